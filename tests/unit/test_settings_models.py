"""The settings models: one split into public JSON and secrets, the stored shapes kept."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mackuper.schemas.alerts import Commands, Notifications
from mackuper.schemas.base import KindSettings, secret_names
from mackuper.schemas.destinations import (
    LocalDestination,
    RcloneDestination,
    S3Destination,
    SFTPDestination,
)
from mackuper.schemas.encryption import Encryption
from mackuper.schemas.sources import (
    LocalSource,
    MariaDBSource,
    PostgresSource,
    RedisSource,
    SQLiteSource,
    SSHSource,
)
from mackuper.schemas.sso import SsoSettings

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.mark.parametrize(
    ("model", "secrets"),
    [
        (LocalSource, ()),
        (SSHSource, ("password", "private_key", "passphrase")),
        (LocalDestination, ()),
        (
            S3Destination,
            (
                "access_key_id",
                "secret_access_key",
                "delete_access_key_id",
                "delete_secret_access_key",
            ),
        ),
        (SFTPDestination, ("password", "private_key", "passphrase")),
        (RcloneDestination, ("secret_options",)),
        (PostgresSource, ("password", "ssh_password", "ssh_private_key", "ssh_passphrase")),
        (MariaDBSource, ("password", "ssh_password", "ssh_private_key", "ssh_passphrase")),
        (RedisSource, ("password", "ssh_password", "ssh_private_key", "ssh_passphrase")),
        (SQLiteSource, ("ssh_password", "ssh_private_key", "ssh_passphrase")),
        (Encryption, ("passphrase", "identity")),
        (Notifications, ("urls", "ping_start", "ping_success", "ping_fail")),
        (SsoSettings, ("client_secret",)),
    ],
)
def test_secret_fields_are_the_marked_ones(model: type[KindSettings], secrets: tuple[str]) -> None:
    assert sorted(secret_names(model)) == sorted(secrets)  # the database kinds' SSH ones too


@pytest.mark.parametrize(
    ("model", "form", "public", "secrets"),
    [
        (
            LocalSource,
            {"paths": "/srv/a\n\n /srv/b ", "excludes": ["*.tmp"]},
            {"paths": ["/srv/a", "/srv/b"], "excludes": ["*.tmp"]},
            {},
        ),
        (
            SSHSource,
            {
                "host": "db.example",
                "username": "backup",
                "paths": ["/var/lib"],
                "host_key": HOST_KEY,
                "password": " pw ",
                "private_key": "ignored: password login",
            },
            {
                "host": "db.example",
                "port": 22,
                "username": "backup",
                "auth": "password",
                "paths": ["/var/lib"],
                "excludes": [],
                "transfer": "auto",
                "host_key": HOST_KEY,
                "secrets": {"password": "set", "private_key": "not set", "passphrase": "not set"},
            },
            {"password": "pw"},
        ),
        (LocalDestination, {"path": "/data/./backups/"}, {"path": "/data/backups"}, {}),
        (
            S3Destination,
            {
                "bucket": "archive",
                "region": "",
                "prefix": "/a//b",
                "storage_class": "glacier_ir",
                "access_key_id": "AKIA",
                "secret_access_key": "shh",
            },
            {
                "bucket": "archive",
                "region": "us-east-1",
                "endpoint_url": "",
                "path_style": False,
                "storage_class": "GLACIER_IR",
                "server_side_encryption": "",
                "kms_key_id": "",
                "prefix": "a/b/",
            },
            {"access_key_id": "AKIA", "secret_access_key": "shh"},
        ),
        (
            Encryption,
            {"mode": "passphrase", "passphrase": " spaces count ", "recipients": "age1ignored"},
            {"mode": "passphrase"},
            {"passphrase": " spaces count "},
        ),
        (
            Notifications,
            {"urls": "json://a.example/x\n", "ping_fail": "https://hc.example/ping/1"},
            {
                "events": {"start": False, "success": False, "warning": True, "failure": True},
                "global_channels": True,
                "urls": 1,
                "pings": {"start": "not set", "success": "not set", "fail": "set"},
            },
            {"urls": ["json://a.example/x"], "ping_fail": "https://hc.example/ping/1"},
        ),
    ],
    ids=["local-source", "ssh-source", "local-destination", "s3", "passphrase", "notifications"],
)
def test_a_form_splits_into_the_stored_public_json_and_secrets(
    model: type[KindSettings], form: dict[str, Any], public: dict[str, Any], secrets: dict[str, Any]
) -> None:
    settings = model.model_validate(form)

    assert settings.public() == public
    assert settings.secrets() == secrets


def test_a_blank_secret_keeps_the_stored_one_a_given_one_replaces_it() -> None:
    stored = {"access_key_id": "OLD-ID", "secret_access_key": "OLD-SECRET"}
    form = S3Destination.model_validate(
        {"bucket": "archive", "access_key_id": "NEW-ID", "secret_access_key": ""}
    )

    assert form.keep_stored(stored).secrets() == {
        "access_key_id": "NEW-ID",
        "secret_access_key": "OLD-SECRET",
    }


def test_blank_alert_urls_keep_the_stored_list_and_clear_removes_it() -> None:
    stored = {"urls": ["json://a.example/x"], "ping_start": "https://hc.example/1"}

    kept = Notifications.model_validate({"urls": ""}).keep_stored(stored)
    cleared = Notifications.model_validate({"clear": ["urls"]}).keep_stored(stored)

    assert kept.secrets() == stored
    assert kept.public()["urls"] == 1
    assert cleared.secrets() == {"ping_start": "https://hc.example/1"}


def test_missing_secrets_are_problems_only_once_the_stored_ones_are_known() -> None:
    form = SSHSource.model_validate(
        {"host": "h", "username": "u", "paths": ["/x"], "host_key": HOST_KEY}
    )

    assert form.problems() == {"password": "Enter the password."}
    assert form.keep_stored({"password": "stored"}).problems() == {}


def test_commands_store_only_the_ones_with_a_command() -> None:
    commands = Commands.model_validate({"pre": {"command": " echo hi "}, "post": {"command": ""}})

    assert commands.stored() == {
        "pre": {"command": "echo hi", "timeout": 600, "on_failure": "abort"}
    }


@pytest.mark.parametrize(
    ("model", "form"),
    [
        (LocalSource, {"paths": [1]}),
        (SSHSource, {"host": "h", "username": "u", "paths": ["/x"], "port": "22"}),
        (S3Destination, {"bucket": "archive", "path_style": "false"}),
        (Encryption, {"mode": "passphrase", "passphrase": ["a"]}),
        (Notifications, {"global_channels": 0}),
        (Commands, {"pre": {"command": "x", "timeout": True}}),
    ],
)
def test_wrong_types_are_refused_not_converted(model: type[Any], form: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(form)
