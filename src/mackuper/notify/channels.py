"""Sending one message to one Apprise URL, and checking URLs before they are saved.

Apprise URLs hold tokens, so neither a URL nor Apprise's own description of it
(which keeps paths) ever appears in an error message: only the service name.
"""

from __future__ import annotations

import importlib
import logging
import threading
import warnings
from types import ModuleType
from typing import Any


class NotifyError(Exception):
    """A notification or ping could not be delivered."""


_loading = threading.Lock()
_loaded: ModuleType | None = None


def _apprise() -> ModuleType:
    """Apprise with every plugin loaded, imported on first use (it takes seconds).

    Its e-mail plugin imports the deprecated `imghdr`; loading all plugins here,
    once, keeps that warning out of running backups.
    """
    global _loaded
    with _loading:
        if _loaded is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                module = importlib.import_module("apprise")
                plugins = importlib.import_module("apprise.manager_plugins")
                plugins.NotificationManager().load_modules()
            _loaded = module
        return _loaded


class _ThreadCapture(logging.Handler):
    """Apprise's warnings from one thread (several runs may notify at once)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.messages.append(record.getMessage())


def _instantiate(url: str) -> Any:
    """Apprise's plugin object for `url`, or None when the URL is not usable."""
    apprise = _apprise()
    instance = apprise.Apprise.instantiate(url)
    return instance if isinstance(instance, apprise.plugins.NotifyBase) else None


def check_url(url: str) -> str | None:
    """None when Apprise can use `url`; otherwise why not, in one sentence."""
    if not url.strip():
        return "Enter an Apprise URL."
    if len(url) > 2000:
        return "The URL is longer than 2000 characters."
    if _instantiate(url.strip()) is None:
        return "Apprise does not recognise this URL; see the Apprise wiki for the format."
    return None


def service_name(url: str) -> str:
    """The kind of service behind `url` ("JSON", "Email", "Slack"), never the URL."""
    instance = _instantiate(url)
    if instance is None:
        return "unknown"
    return str(instance.service_name)


def send(url: str, title: str, body: str, kind: str) -> None:
    """Deliver one message; raises NotifyError with Apprise's reason (no URL)."""
    instance = _instantiate(url)
    if instance is None:
        raise NotifyError("the URL is not a valid Apprise URL")
    capture = _ThreadCapture()
    logger = logging.getLogger("apprise")
    logger.addHandler(capture)
    try:
        delivered = instance.notify(body=body, title=title, notify_type=kind)
    finally:
        logger.removeHandler(capture)
    if not delivered:
        reason = capture.messages[-1] if capture.messages else "the service refused the message"
        raise NotifyError(_without_url(reason, url))


def _without_url(text: str, url: str) -> str:
    """`text` with the URL (and its parts holding tokens) removed."""
    for part in sorted({url, *url.split("/")}, key=len, reverse=True):
        if len(part) >= 8 and part in text:
            text = text.replace(part, "***")
    return text.strip()
