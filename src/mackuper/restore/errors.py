"""Errors of reading back stored archives."""

from __future__ import annotations


class RestoreError(Exception):
    """The archive could not be read back or restored."""


class EncryptedRestoreUnavailable(RestoreError):
    """encrypted restore is not available"""

    def __init__(self, message: str = "encrypted restore is not available") -> None:
        super().__init__(message)


class Refused(Exception):
    """One member was refused; the restore goes on and the log says why."""


class TargetError(RestoreError):
    """The restore target cannot be written."""
