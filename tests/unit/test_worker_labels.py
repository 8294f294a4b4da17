"""Worker labels: how they are read from the environment, and which runs need one."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mackuper.config import ConfigError, load_settings
from mackuper.core.labels import host_label, parse_labels
from mackuper.models import Job, RunKind
from mackuper.runs.queue import Lane, lane_of, required_label
from mackuper.schemas.jobs import JobBody


@pytest.mark.parametrize(
    ("raw", "labels"),
    [
        ("nas", ("nas",)),
        (" NAS , office,nas,", ("nas", "office")),
        ("rack-2.example_lan", ("rack-2.example_lan",)),
    ],
)
def test_labels_are_a_comma_separated_list_in_lower_case_each_once(
    raw: str, labels: tuple[str, ...]
) -> None:
    assert parse_labels(raw) == labels


@pytest.mark.parametrize("raw", ["-nas", "nas-", "my nas", "n/a", "x" * 65, "nås"])
def test_a_label_that_is_not_a_host_name_like_word_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="is not a label"):
        parse_labels(raw)


def test_a_worker_without_labels_is_labelled_with_its_host_name(tmp_path: Path) -> None:
    settings = load_settings({"MACKUPER_DATA_DIR": str(tmp_path)})
    assert settings.worker_labels == (host_label(socket.gethostname()),)
    blank = load_settings({"MACKUPER_DATA_DIR": str(tmp_path), "MACKUPER_WORKER_LABELS": " "})
    assert blank.worker_labels == settings.worker_labels
    given = load_settings({"MACKUPER_DATA_DIR": str(tmp_path), "MACKUPER_WORKER_LABELS": "A,b"})
    assert given.worker_labels == ("a", "b")


def test_a_bad_label_stops_start_up_naming_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MACKUPER_WORKER_LABELS: 'my nas' is not a label"):
        load_settings({"MACKUPER_DATA_DIR": str(tmp_path), "MACKUPER_WORKER_LABELS": "my nas"})


@pytest.mark.parametrize(
    ("hostname", "label"),
    [("Backup-Box", "backup-box"), ("nas.home.lan", "nas.home.lan"), ("--", "worker")],
)
def test_a_host_name_becomes_a_label(hostname: str, label: str) -> None:
    assert host_label(hostname) == label


LOCAL = {"target": {"kind": "local", "path": "/restore"}}
SSH = {"target": {"kind": "ssh", "path": "/restore", "host": "files"}}
VOLUME = {"target": {"kind": "volume", "source": "data", "volume": "data-copy"}}
DATABASE = {"target": {"kind": "database", "database": "app"}}


@pytest.mark.parametrize(
    ("kind", "details", "needed"),
    [
        (RunKind.BACKUP, {}, "nas"),  # reads the job's files
        (RunKind.RESTORE, LOCAL, "nas"),  # writes beside them
        (RunKind.RESTORE, SSH, None),  # only needs the storage and the SSH host
        (RunKind.RESTORE, VOLUME, "nas"),  # the engine the job's backups read
        (RunKind.RESTORE, DATABASE, None),  # only needs the storage and the server
        (RunKind.VERIFY, {}, None),  # only needs the storage
    ],
)
def test_which_runs_of_a_labelled_job_need_its_label(
    kind: RunKind, details: dict[str, Any], needed: str | None
) -> None:
    job = Job(name="docs", slug="docs", source_kind="local", worker_label="nas")
    assert required_label(kind, job, details) == needed
    assert required_label(kind, Job(name="any", slug="any", source_kind="local"), details) is None
    assert required_label(kind, None, details) is None


def test_backups_have_one_lane_restores_and_verifications_another() -> None:
    assert lane_of(RunKind.BACKUP) is Lane.BACKUPS
    assert {lane_of(RunKind.RESTORE), lane_of(RunKind.VERIFY)} == {Lane.RESTORES}
    assert Lane.BACKUPS.slots(3) == 3 and Lane.RESTORES.slots(3) == 1


def test_the_job_body_takes_a_label_in_lower_case_and_refuses_a_bad_one_by_name() -> None:
    body = {"name": "docs", "destination_ids": [1]}
    assert JobBody.model_validate({**body, "worker_label": "NAS"}).worker_label == "nas"
    assert JobBody.model_validate({**body, "worker_label": None}).worker_label is None
    assert "worker_label" not in JobBody.model_validate(body).model_fields_set
    with pytest.raises(ValidationError, match="A label is letters") as refused:
        JobBody.model_validate({**body, "worker_label": "my nas"})
    assert refused.value.errors()[0]["loc"] == ("worker_label",)
