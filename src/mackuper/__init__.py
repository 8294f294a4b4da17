"""Mackuper: self-hosted backups as plain archives."""

__version__ = "0.1.0"
