"""Wrong input is refused by name and creates nothing (issue 14's examples, one test each).

Before typed input these were coerced or crashed: a list name was saved as its text,
`[true]` meant destination 1, `"retention": [1]` was dropped, `"encryption": "yes"`
meant none, `"enabled": "no"` enabled the job, a NUL in a path failed the run later,
and nesting, lone surrogates, 2**63 and "²" answered 500.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mackuper.models import Destination, Job, NotificationChannel, Run
from mackuper.runtime import Runtime
from tests.conftest import ApiClient

TOO_BIG = 2**63


@pytest.fixture
def destination_id(runtime: Runtime, tmp_path: Path) -> int:
    with runtime.sessions.begin() as session:
        row = Destination(name="disk", kind="local", config={"path": str(tmp_path / "out")})
        session.add(row)
        session.flush()
        return row.id


def _job(destination_id: int, tmp_path: Path, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "docs",
        "source_kind": "local",
        "source": {"paths": [str(tmp_path)], "excludes": []},
        "archive_format": "tar.gz",
        "destination_ids": [destination_id],
    }
    body.update(changes)
    return body


def _count(runtime: Runtime, model: type[Any]) -> int:
    with runtime.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _send_raw(api: ApiClient, method: str, path: str, data: bytes) -> Any:
    return api.client.open(
        path,
        method=method,
        data=data,
        content_type="application/json",
        headers={"X-CSRF-Token": api.csrf},
    )


def _assert_refused_by_name(response: Any, field: str) -> None:
    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["field"] == field, answer
    assert field in answer["error"], answer


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": ["a", "b"]}, "name"),
        ({"destination_ids": [True]}, "destination_ids[0]"),
        ({"retention": [1]}, "retention"),
        ({"encryption": "yes"}, "encryption"),
        ({"enabled": "no"}, "enabled"),
        ({"source": {"paths": ["/srv/a\x00b"]}}, "source.paths[0]"),
        ({"compression_level": TOO_BIG}, "compression_level"),
        ({"destination_ids": [TOO_BIG]}, "destination_ids[0]"),
        ({"name": "docs \udcff"}, "name"),
    ],
    ids=[
        "list-as-name",
        "bool-as-id",
        "list-as-retention",
        "string-as-encryption",
        "no-as-enabled",
        "nul-in-path",
        "2**63-in-body",
        "2**63-as-id",
        "lone-surrogate",
    ],
)
def test_a_wrong_job_field_is_refused_by_name_and_nothing_is_created(
    api: ApiClient,
    runtime: Runtime,
    destination_id: int,
    tmp_path: Path,
    changes: dict[str, Any],
    field: str,
) -> None:
    # ensure_ascii keeps a lone surrogate as the escape "\udcff", as a client would send it.
    data = json.dumps(_job(destination_id, tmp_path, **changes)).encode()

    response = _send_raw(api, "POST", "/api/jobs", data)

    _assert_refused_by_name(response, field)
    assert _count(runtime, Job) == 0


def test_a_lone_surrogate_as_raw_bytes_is_refused(
    api: ApiClient, runtime: Runtime, destination_id: int, tmp_path: Path
) -> None:
    data = json.dumps(_job(destination_id, tmp_path, name="docs XX")).encode()
    data = data.replace(b"XX", b"\xed\xb3\xbf")  # "\udcff" encoded as if it were a character

    response = _send_raw(api, "POST", "/api/jobs", data)

    assert response.status_code == 400
    assert "UTF-8" in response.get_json()["error"]
    assert _count(runtime, Job) == 0


@pytest.mark.parametrize("number", [b"9" * 5000, b"1e999", b"-" + b"9" * 30])
def test_a_number_python_cannot_or_should_not_read_is_refused_by_name(
    api: ApiClient, runtime: Runtime, destination_id: int, tmp_path: Path, number: bytes
) -> None:
    body = json.dumps(_job(destination_id, tmp_path, compression_level="@")).encode()

    response = _send_raw(api, "POST", "/api/jobs", body.replace(b'"@"', number))

    _assert_refused_by_name(response, "compression_level")
    assert _count(runtime, Job) == 0


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_json_is_refused(
    api: ApiClient, runtime: Runtime, destination_id: int, tmp_path: Path, depth: int
) -> None:
    body = json.dumps(_job(destination_id, tmp_path, source="@")).encode()
    nested = b"[" * depth + b"]" * depth
    data = body.replace(b'"@"', b'{"paths": ' + nested + b"}")

    response = _send_raw(api, "POST", "/api/jobs", data)

    assert response.status_code == 400, response.get_data(as_text=True)
    answer = response.get_json()
    assert "nested more than 32 levels" in answer["error"]
    if depth == 40:  # within the parser's own limit the path is known
        assert answer["field"].startswith("source.paths[0]")
        assert answer["field"] in answer["error"]
    assert _count(runtime, Job) == 0


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"/api/runs?job_id={TOO_BIG}", "job_id"),
        ("/api/runs?job_id=%C2%B2", "job_id"),
        ("/api/runs?page=%C2%B2", "page"),
        (f"/api/backups?destination_id={TOO_BIG}", "destination_id"),
        ("/api/backups?job_id=%C2%B2", "job_id"),
        (f"/api/runs/1/log?after={TOO_BIG}", "after"),
        ("/api/runs?since=0001-01-01T00:00:00%2B14:00", "since"),
        ("/api/runs?until=9999-12-31T23:59:59-14:00", "until"),
    ],
)
def test_a_number_in_a_query_is_ascii_digits_within_64_bits(
    api: ApiClient, runtime: Runtime, path: str, field: str
) -> None:
    with runtime.sessions.begin() as session:
        session.add(Run(job_name="docs"))

    response = api.call("GET", path)

    assert response.status_code == 422, response.get_data(as_text=True)
    _assert_refused_by_name(response, field)


@pytest.mark.parametrize(
    "path",
    [
        f"/api/jobs/{TOO_BIG}",
        f"/api/runs/{TOO_BIG}",
        f"/api/destinations/{10**30}",
        "/api/jobs/%C2%B2",
        "/api/runs/%C2%B2/log",
    ],
)
def test_an_id_in_the_path_beyond_64_bits_is_not_found(api: ApiClient, path: str) -> None:
    response = api.call("GET", path)

    assert response.status_code == 404
    assert "error" in response.get_json()


def test_enabled_no_does_not_enable_a_job(
    api: ApiClient, runtime: Runtime, destination_id: int, tmp_path: Path
) -> None:
    created = api.call("POST", "/api/jobs", _job(destination_id, tmp_path, enabled=False))
    assert created.status_code == 201, created.get_data(as_text=True)
    job_id = created.get_json()["job"]["id"]

    response = api.call("POST", f"/api/jobs/{job_id}/enabled", {"enabled": "no"})

    _assert_refused_by_name(response, "enabled")
    with runtime.sessions() as session:
        assert session.get_one(Job, job_id).enabled is False


def test_the_job_form_keeps_its_field_names_for_the_page(
    api: ApiClient, destination_id: int, tmp_path: Path
) -> None:
    response = api.call(
        "POST",
        "/api/jobs",
        _job(destination_id, tmp_path, source={"paths": ["relative/path"]}),
    )

    assert response.status_code == 422
    assert response.get_json()["fields"]["paths"].startswith("Use absolute paths")


def test_a_wrong_destination_or_channel_creates_nothing(
    api: ApiClient, runtime: Runtime, tmp_path: Path
) -> None:
    destination = api.call(
        "POST", "/api/destinations", {"name": ["a"], "kind": "local", "path": str(tmp_path)}
    )
    s3 = api.call(
        "POST",
        "/api/destinations",
        {"name": "s3", "kind": "s3", "bucket": "b" * 3, "path_style": "yes", "test": False},
    )
    channel = api.call("POST", "/api/notifications/channels", {"name": "x", "enabled": 1})

    _assert_refused_by_name(destination, "name")
    _assert_refused_by_name(s3, "path_style")
    _assert_refused_by_name(channel, "enabled")
    assert _count(runtime, Destination) == 0
    assert _count(runtime, NotificationChannel) == 0


def test_an_error_never_repeats_a_secret(api: ApiClient, runtime: Runtime) -> None:
    secret = "s3cr3t-never-shown"
    response = api.call(
        "POST",
        "/api/destinations",
        {"name": "s3", "kind": "s3", "bucket": ["b"], "secret_access_key": secret, "test": False},
    )

    assert response.status_code == 422
    assert secret not in response.get_data(as_text=True)
    assert _count(runtime, Destination) == 0
