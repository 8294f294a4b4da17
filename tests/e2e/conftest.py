"""Browser fixtures for the UI tests (tests/e2e/test_ui_*.py)."""

from tests.e2e.browser import chromium, ui  # noqa: F401
