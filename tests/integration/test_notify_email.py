"""A failure alert arrives as mail at a real SMTP server (aiosmtpd) through Apprise."""

from __future__ import annotations

import email
from email.message import Message
from pathlib import Path

import pytest

from mackuper.runtime import Runtime
from tests.integration.notify_helpers import (  # noqa: F401 - fixtures
    MailReceiver,
    add_channel,
    mail_receiver_fixture,
    make_job,
    run_job,
)

pytestmark = pytest.mark.integration


def _text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no text/plain part")


def test_failure_alert_is_mailed_with_job_status_error_and_link(
    runtime: Runtime, mail_receiver: MailReceiver, tmp_path: Path
) -> None:
    add_channel(
        runtime,
        "mail ops",
        f"mailto://127.0.0.1:{mail_receiver.port}"
        "?from=mackuper@example.org&to=ops@example.org&mode=insecure",
    )
    job_id = make_job(runtime, tmp_path / "missing", [tmp_path / "out"], name="Mail server")

    run = run_job(runtime, job_id)

    assert run.status == "failed"
    (raw,) = mail_receiver.wait_for(1)
    message = email.message_from_bytes(raw)
    assert message["Subject"] == "Mackuper: Backup 'Mail server' could not start"
    assert message["To"] == "ops@example.org"
    body = _text(message)
    assert "Job: Mail server" in body
    assert "Status: failed" in body
    assert f"Error: {run.error}" in body
    assert f"Details: http://localhost:{runtime.settings.port}/runs/{run.id}" in body
