"""A job's alert settings (notification URLs, pings) and its pre/post commands.

Notifications: the public part lands in `Job.notifications` as
`{"events": {...}, "global_channels": true, "urls": 2, "pings": {"fail": "set", ...}}`;
the URLs, which hold tokens, land encrypted in `Job.notify_secrets_encrypted` as
`{"urls": [...], "ping_start": ..., "ping_success": ..., "ping_fail": ...}`. A blank
or missing URL keeps what is stored; a name in `clear` removes it.

Commands land in `Job.hooks` as `{"pre": {"command": ..., "timeout": 600,
"on_failure": "abort"}, "post": {...}}`; a blank command means none.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints, field_validator

from mackuper.notify.channels import check_url
from mackuper.notify.pings import PING_KINDS, check_ping_url
from mackuper.schemas.base import Input, KindSettings, Secret, SecretText, Text, says

MAX_JOB_URLS = 10
DEFAULT_TIMEOUT = 600
MAX_TIMEOUT = 86_400
MAX_COMMAND = 4000

SecretName = Literal["urls", "ping_start", "ping_success", "ping_fail"]


def _url_lines(value: object) -> object:
    if isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    if isinstance(value, list):
        return [item.strip() if isinstance(item, str) else item for item in value if item != ""]
    return value


def _ping(url: str) -> str:
    if url and (problem := check_ping_url(url)):
        raise ValueError(problem)
    return url


class JobEvents(Input):
    """Which run events send an alert."""

    start: bool = False
    success: bool = False
    warning: bool = True
    failure: bool = True


class Notifications(KindSettings):
    """Where a job's alerts go: the global channels, its own Apprise URLs, ping URLs."""

    events: JobEvents = JobEvents()
    global_channels: bool = True
    urls: Annotated[
        list[Annotated[str, StringConstraints(max_length=2000)]],
        Secret(),
        BeforeValidator(_url_lines),
        Field(json_schema_extra={"writeOnly": True}),
    ] = []
    ping_start: SecretText = ""
    ping_success: SecretText = ""
    ping_fail: SecretText = ""
    clear: Annotated[list[SecretName], Field(exclude=True)] = []
    """Stored URLs to remove."""

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        if len(urls) > MAX_JOB_URLS:
            raise ValueError(f"Use at most {MAX_JOB_URLS} URLs.")
        for number, url in enumerate(urls, 1):
            if problem := check_url(url):
                raise ValueError(f"Line {number}: {problem}")
        return urls

    @field_validator("ping_start", "ping_success", "ping_fail")
    @classmethod
    def _pings(cls, url: str) -> str:
        return _ping(url)

    def keep_stored(self, stored: dict[str, Any]) -> Notifications:
        kept = {name: value for name, value in stored.items() if name not in self.clear}
        return super().keep_stored(kept)

    def public(self) -> dict[str, Any]:
        secrets = self.secrets()
        return {
            "events": self.events.model_dump(),
            "global_channels": self.global_channels,
            "urls": len(secrets.get("urls", [])),
            "pings": {
                kind: "set" if secrets.get(f"ping_{kind}") else "not set" for kind in PING_KINDS
            },
        }


Seconds = Annotated[
    int,
    Field(ge=1, le=MAX_TIMEOUT),
    says(f"Use a whole number of seconds from 1 to {MAX_TIMEOUT}."),
]


class Command(Input):
    """A shell command run before or after a backup."""

    command: Annotated[Text, Field(max_length=MAX_COMMAND)] = ""
    timeout: Seconds | None = DEFAULT_TIMEOUT
    on_failure: Annotated[Literal["abort", "warn"], says("Choose abort or warn.")] | None = None
    """abort: the run fails; warn: the run ends as warning at worst. Default: abort
    before, warn after."""


class Commands(Input):
    """A job's pre- and post-backup commands."""

    pre: Command | None = None
    post: Command | None = None

    def stored(self) -> dict[str, Any]:
        """What `Job.hooks` holds: the commands that are not blank."""
        stored: dict[str, Any] = {}
        for name, default_policy in (("pre", "abort"), ("post", "warn")):
            command: Command | None = getattr(self, name)
            if command is None or not command.command:
                continue
            stored[name] = {
                "command": command.command,
                "timeout": command.timeout or DEFAULT_TIMEOUT,
                "on_failure": command.on_failure or default_policy,
            }
        return stored
