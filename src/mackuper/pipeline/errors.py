"""Pipeline errors; `outcome.py` maps every exception to a run status and a message."""

from __future__ import annotations


class PipelineError(Exception):
    """The backup could not be completed."""


class Cancelled(PipelineError):
    """The run was cancelled by a user."""


class Interrupted(PipelineError):
    """The worker is shutting down; the run will be marked interrupted."""


class AllDestinationsFailed(PipelineError):
    """Every destination of the job failed."""


class ArchiveNameTaken(PipelineError):
    """Another run holds this archive name; the next name is tried."""
