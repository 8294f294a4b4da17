"""SFTP destinations against the test sshd: what the contract suite does not cover."""

from __future__ import annotations

import pytest

from mackuper.destinations import registry
from mackuper.destinations.base import DestinationError, ObjectExists
from mackuper.destinations.sftp import SFTPDestination
from mackuper.schemas.destinations import SFTPDestination as SFTPSettings
from mackuper.ssh import HostKey
from tests.integration.ssh_support import target_for
from tests.integration.storage_support import PLANTED, sftp_store
from tests.servers.sshd import SSHServer

pytestmark = pytest.mark.integration

OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGn3LDc+iAeUOvDMt3Lp2ThyFL1PLu2L+pOyBsP0BJRL"


def test_the_rename_itself_refuses_a_name_that_appeared_after_the_look(
    sshd: SSHServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer publishing between the look and the RENAME: the server refuses."""
    store = sftp_store(sshd)
    writer = store.destination.open_writer("job/backup.tar", {})
    writer.write(b"x" * 5000)
    store.plant("job/backup.tar", PLANTED)
    real_exists = SFTPDestination.exists
    looks: list[str] = []

    def exists(client: object, path: str) -> bool:
        looks.append(path)
        return len(looks) > 1 and real_exists(client, path)  # type: ignore[arg-type]

    monkeypatch.setattr(SFTPDestination, "exists", staticmethod(exists))

    with pytest.raises(ObjectExists):
        writer.commit()

    assert store.read("job/backup.tar") == PLANTED
    assert store.leftovers() == []
    assert len(looks) == 2  # the look saw nothing; the refused RENAME made it look again


def test_a_changed_host_key_fails_before_anything_is_sent(sshd: SSHServer) -> None:
    store = sftp_store(sshd)
    target = target_for(sshd, "password", host_key=HostKey.parse(OTHER_KEY))
    destination = SFTPDestination(target, str(store.destination.root))  # type: ignore[attr-defined]

    with pytest.raises(DestinationError, match="host key .* changed.*nothing was sent"):
        destination.check_access()


@pytest.mark.parametrize("role", ["key", "key_passphrase"])
def test_settings_from_the_form_log_in_with_a_key_and_write(sshd: SSHServer, role: str) -> None:
    user = sshd.users[role]
    root = sshd.make_remote_tree(user.username, {})
    settings = SFTPSettings.model_validate(
        {
            "host": sshd.host,
            "port": sshd.port,
            "username": user.username,
            "auth": "key",
            "private_key": user.private_key,
            "passphrase": user.passphrase or "",
            "path": f"{root}/nas/../backups/",
            "host_key": sshd.host_public_key,
        }
    )
    assert settings.problems() == {}
    assert "private_key" not in settings.public() and settings.public()["path"] == f"{root}/backups"

    destination = registry.build("sftp", settings.public(), settings.secrets())
    destination.check_access()
    destination.put_bytes("job/manifest.json", b"{}", "application/json")

    assert (root / "backups" / "job" / "manifest.json").read_bytes() == b"{}"


def test_settings_without_a_trusted_host_key_ask_for_one(sshd: SSHServer) -> None:
    settings = SFTPSettings.model_validate(
        {"host": sshd.host, "username": "someone", "password": "pw", "path": "/backups"}
    )
    assert settings.problems() == {
        "host_key": "Test the connection and trust the server's host key."
    }
    with pytest.raises(ValueError, match="absolute path on the server"):
        SFTPSettings.model_validate(
            {"host": "nas", "username": "someone", "password": "pw", "path": "backups"}
        )
