"""The web application: pages and the JSON API. It never runs backups."""

from __future__ import annotations

from mackuper.web.app import create_app

__all__ = ["create_app"]
