"""What an alert says: headlines, figures and the status-to-event mapping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mackuper.notify.message import (
    RunEvent,
    build_message,
    event_for_status,
    human_duration,
    human_size,
)


@pytest.mark.parametrize(
    ("status", "event"),
    [
        ("success", "success"),
        ("warning", "warning"),
        ("failed", "failure"),
        ("interrupted", "failure"),
        ("cancelled", None),
        ("skipped", None),
    ],
)
def test_each_final_status_raises_its_event_and_a_cancel_raises_none(
    status: str, event: str | None
) -> None:
    assert event_for_status(status) == event


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 bytes"), (1023, "1023 bytes"), (1536, "1.5 KiB"), (5 * 1024**3, "5.0 GiB")],
)
def test_sizes_read_like_a_person_writes_them(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(2.25, "2.2 s"), (65, "1 min 05 s"), (3 * 3600 + 120, "3 h 02 min")],
)
def test_durations_read_like_a_person_writes_them(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def _event(**changes: object) -> RunEvent:
    values: dict[str, object] = {
        "event": "failure",
        "job_name": "Photos",
        "run_id": 7,
        "status": "failed",
        "run_url": "https://b.example/runs/7",
        "started_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "duration_seconds": 65.0,
        "size": 2048,
        "files": 3,
        "error": "access denied",
    }
    values.update(changes)
    return RunEvent(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "title", "kind"),
    [
        ({"event": "start", "status": "running"}, "Backup 'Photos' started", "info"),
        ({"event": "success", "status": "success"}, "Backup 'Photos' succeeded", "success"),
        ({"event": "warning"}, "Backup 'Photos' finished with warnings", "warning"),
        ({}, "Backup 'Photos' failed", "failure"),
        ({"could_not_start": True}, "Backup 'Photos' could not start", "failure"),
        ({"action": "Restore"}, "Restore 'Photos' failed", "failure"),
        ({"action": "Verification", "event": "start"}, "Verification 'Photos' started", "info"),
    ],
)
def test_the_title_and_kind_follow_the_event(
    changes: dict[str, object], title: str, kind: str
) -> None:
    message = build_message(_event(**changes))
    assert message.title == f"Mackuper: {title}"
    assert message.kind == kind


def test_the_body_carries_job_status_figures_error_and_link() -> None:
    assert build_message(_event()).body.splitlines() == [
        "Job: Photos",
        "Status: failed",
        "Run: #7",
        "Started: 2026-01-02 03:04:05 UTC",
        "Duration: 1 min 05 s",
        "Size: 2.0 KiB",
        "Files: 3",
        "Error: access denied",
        "Details: https://b.example/runs/7",
    ]
