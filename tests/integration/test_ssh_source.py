"""The SSH source against a real OpenSSH sshd: both transfer modes, every auth kind, failures."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from mackuper.sources.ssh import SSHSource
from mackuper.sources.ssh_sftp import _Link, _RemoteFile
from mackuper.ssh import HostKey, HostKeyMismatch, OpenSSHSession, SSHError
from tests.integration.engine_support import RecordingHooks, describe_tree, extract
from tests.integration.ssh_support import (
    every_kind_remote_tree,
    noisy_login,
    prove_logins_are_logged,
    ssh_backup,
    sshd_log_since,
    sshd_log_size,
    target_for,
)
from tests.servers.ports import LOOPBACK
from tests.servers.sshd import SSHServer, chown_tree, generate_key

pytestmark = pytest.mark.integration

MODES = ["tar", "sftp"]
ROLES = ["password", "key", "key_passphrase"]


def _other_host_key(tmp_path: Path) -> HostKey:
    generate_key(tmp_path / "other", "ed25519")
    return HostKey.parse((tmp_path / "other.pub").read_text())


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("mode", MODES)
def test_remote_tree_with_every_entry_kind_extracts_identically(
    sshd: SSHServer, tmp_path: Path, mode: str, role: str
) -> None:
    tree = every_kind_remote_tree(sshd, sshd.users[role].username)
    source = SSHSource(target_for(sshd, role), [str(tree)], transfer=mode)

    result, hooks, archive = ssh_backup(source, tmp_path / "dest")

    assert result.problems == [], hooks.messages()
    extract(archive, "tar", tmp_path / "out")
    restored = tmp_path / "out" / str(tree).lstrip("/")
    assert describe_tree(restored) == describe_tree(tree)
    listing = subprocess.run(
        ["tar", "-tvf", str(archive)], capture_output=True, text=True, check=True
    ).stdout
    assert "link-to-readme -> docs/readme.txt" in listing
    if mode == "tar":  # SFTP v3 cannot see inodes, so only tar keeps hard links
        assert "hard-b.txt link to" in listing or "hard-a.txt link to" in listing


@pytest.mark.parametrize("mode", MODES)
def test_unreadable_remote_file_ends_as_warning_and_the_rest_is_stored(
    sshd: SSHServer, tmp_path: Path, mode: str
) -> None:
    tree = every_kind_remote_tree(sshd, sshd.users["key"].username)
    (tree / "docs" / "readme.txt").chmod(0)
    source = SSHSource(target_for(sshd, "key"), [str(tree)], transfer=mode)

    result, _hooks, archive = ssh_backup(source, tmp_path / "dest")

    assert any("readme.txt" in problem for problem in result.problems), result.problems
    extract(archive, "tar", tmp_path / "out")
    restored = tmp_path / "out" / str(tree).lstrip("/")
    assert (restored / "medium.bin").read_bytes() == (tree / "medium.bin").read_bytes()


@pytest.mark.parametrize("mode", MODES)
def test_excludes_skip_matching_remote_files_and_whole_directories(
    sshd: SSHServer, tmp_path: Path, mode: str
) -> None:
    tree = every_kind_remote_tree(sshd, sshd.users["key"].username)
    source = SSHSource(target_for(sshd, "key"), [str(tree)], ["docs", "*.bin"], transfer=mode)

    _result, _hooks, archive = ssh_backup(source, tmp_path / "dest")

    extract(archive, "tar", tmp_path / "out")
    restored = tmp_path / "out" / str(tree).lstrip("/")
    kept = describe_tree(restored)
    assert not any(name.startswith("docs") or name.endswith(".bin") for name in kept)
    assert kept["name with spaces é.txt"] == describe_tree(tree)["name with spaces é.txt"]


@pytest.mark.parametrize("mode", MODES)
def test_changed_host_key_fails_before_login_with_both_fingerprints(
    sshd: SSHServer, tmp_path: Path, mode: str
) -> None:
    tree = sshd.make_remote_tree(sshd.users["password"].username, {"a.txt": "a"})
    pinned = _other_host_key(tmp_path)
    source = SSHSource(target_for(sshd, "password", host_key=pinned), [str(tree)], transfer=mode)
    prove_logins_are_logged(sshd, "password")  # so their absence below means something
    log_start = sshd_log_size(sshd)

    with pytest.raises(HostKeyMismatch) as raised:
        ssh_backup(source, tmp_path / "dest")

    message = str(raised.value)
    assert sshd.host_key_fingerprint in message
    assert pinned.fingerprint in message
    assert not list((tmp_path / "dest").rglob("*.tar*"))
    server_log = sshd_log_since(sshd, log_start)
    assert "Accepted" not in server_log
    assert "Failed password" not in server_log


@pytest.mark.parametrize("mode", MODES)
def test_wrong_password_fails_as_authentication_error(
    sshd: SSHServer, tmp_path: Path, mode: str
) -> None:
    tree = sshd.make_remote_tree(sshd.users["password"].username, {"a.txt": "a"})
    target = target_for(sshd, "password", password="not-the-password")
    source = SSHSource(target, [str(tree)], transfer=mode)

    with pytest.raises(SSHError, match="authentication failed for mkp_pw@"):
        ssh_backup(source, tmp_path / "dest")


@pytest.mark.parametrize("mode", MODES)
def test_key_the_server_does_not_know_fails_as_authentication_error(
    sshd: SSHServer, tmp_path: Path, mode: str
) -> None:
    generate_key(tmp_path / "stranger", "ed25519")
    stranger = (tmp_path / "stranger").read_text()
    tree = sshd.make_remote_tree(sshd.users["key"].username, {"a.txt": "a"})
    source = SSHSource(target_for(sshd, "key", private_key=stranger), [str(tree)], transfer=mode)

    with pytest.raises(SSHError, match="authentication failed for mkp_key@"):
        ssh_backup(source, tmp_path / "dest")


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_tar_mode_backs_up_past_a_login_that_greets(
    sshd: SSHServer, tmp_path: Path, stream: str
) -> None:
    """bash runs ~/.bashrc for every command sshd runs; words it prints on standard
    output come before the tar stream, and are left out (and said in the log)."""
    tree = every_kind_remote_tree(sshd, sshd.users["key"].username)
    source = SSHSource(target_for(sshd, "key"), [str(tree)], transfer="tar")
    with noisy_login(sshd, "key", stream):
        result, hooks, archive = ssh_backup(source, tmp_path / "dest")

    assert result.problems == [], hooks.messages()
    extract(archive, "tar", tmp_path / "out")
    assert describe_tree(tmp_path / "out" / str(tree).lstrip("/")) == describe_tree(tree)
    left_out = "left out 26 bytes the login shell printed on standard output"
    assert (left_out in hooks.messages()) is (stream == "stdout")
    assert "welcome" not in hooks.messages()


def test_tar_mode_fails_at_once_when_the_login_floods_standard_output(
    sshd: SSHServer, tmp_path: Path
) -> None:
    tree = every_kind_remote_tree(sshd, sshd.users["key"].username)
    source = SSHSource(target_for(sshd, "key"), [str(tree)], transfer="tar")
    started = time.monotonic()
    with (
        noisy_login(sshd, "key", "flood"),
        pytest.raises(SSHError, match="printed over 256 KiB on standard output before tar"),
    ):
        ssh_backup(source, tmp_path / "dest")
    assert time.monotonic() - started < 20  # not after the keepalive's wait


@pytest.mark.parametrize("mode", MODES)
def test_missing_remote_path_fails_with_its_name(
    sshd: SSHServer, tmp_path: Path, mode: str
) -> None:
    source = SSHSource(target_for(sshd, "key"), ["/srv/no-such-dir"], transfer=mode)

    with pytest.raises(SSHError, match="remote path /srv/no-such-dir does not exist"):
        ssh_backup(source, tmp_path / "dest")


def test_refused_connection_fails_with_a_plain_message(tmp_path: Path, sshd: SSHServer) -> None:
    target = target_for(sshd, "key", port=1)
    source = SSHSource(target, ["/tmp"], transfer="tar")  # noqa: S108 - never read

    with pytest.raises(SSHError, match="refused the connection"):
        ssh_backup(source, tmp_path / "dest")


@pytest.mark.parametrize("mode", MODES)
def test_sshd_stopped_mid_run_fails_the_run_quickly(
    sshd: SSHServer, tmp_path: Path, mode: str
) -> None:
    root = Path(tempfile.mkdtemp(prefix="big-", dir=sshd.work_dir / "trees"))
    for index in range(24):
        (root / f"part-{index:02d}.bin").write_bytes(os.urandom(2 << 20))
    chown_tree(root, sshd.users["key"].username)
    # Reconnecting is tried for the retry budget (test_outages.py rides out outages).
    source = SSHSource(target_for(sshd, "key", retry_seconds=2), [str(root)], transfer=mode)
    hooks = RecordingHooks()

    def stop_server(bytes_read: int) -> None:
        if bytes_read > 4 << 20 and sshd.is_running():
            sshd.stop()

    hooks.stop_when = stop_server
    started = time.monotonic()
    with pytest.raises(SSHError, match="lost.*could not be made again within 2 s"):
        ssh_backup(source, tmp_path / "dest", hooks)

    assert time.monotonic() - started < 30
    assert not list((tmp_path / "dest").rglob("*.tar"))


@pytest.mark.parametrize("mode", MODES)
def test_unresolvable_host_name_fails_with_a_plain_message(
    tmp_path: Path, sshd: SSHServer, mode: str
) -> None:
    target = target_for(sshd, "key", host="no-such-host.invalid")
    source = SSHSource(target, ["/srv"], transfer=mode)

    with pytest.raises(SSHError, match="no-such-host.invalid could not be resolved"):
        ssh_backup(source, tmp_path / "dest")


@pytest.mark.parametrize("mode", MODES)
def test_server_that_never_greets_times_out(tmp_path: Path, sshd: SSHServer, mode: str) -> None:
    with socket.socket() as silent:
        silent.bind((LOOPBACK, 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        target = target_for(sshd, "key", port=port, connect_timeout=2.0)
        source = SSHSource(target, ["/srv"], transfer=mode)
        started = time.monotonic()

        with pytest.raises(SSHError, match="timed out"):
            ssh_backup(source, tmp_path / "dest")

    assert time.monotonic() - started < 20


@pytest.mark.parametrize("mode", MODES)
def test_unreadable_remote_root_fails_as_permission_denied(
    tmp_path: Path, sshd: SSHServer, mode: str
) -> None:
    tree = sshd.make_remote_tree(sshd.users["key"].username, {"secret/a.txt": "a"})
    (tree / "secret").chmod(0)
    source = SSHSource(target_for(sshd, "key"), [str(tree / "secret")], transfer=mode)

    with pytest.raises(SSHError, match="not readable .permission denied."):
        ssh_backup(source, tmp_path / "dest")


def _negotiated_cipher(server: SSHServer) -> str:
    """The cipher `ssh`, run with the tar mode's own options, agrees on with sshd."""
    session = OpenSSHSession(target_for(server, "key"))
    try:
        result = subprocess.run(
            [session.argv[0], "-v", *session.argv[1:], "true"],
            env=session.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    finally:
        session.close()
    found = re.search(r"kex: server->client cipher: (\S+)", result.stderr)
    assert found, result.stderr[-2000:]
    return found.group(1)


def test_tar_mode_prefers_aes_gcm_on_aes_cpus_and_honours_the_override(
    sshd: SSHServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MACKUPER_SSH_CIPHERS", raising=False)
    has_aes = "aes" in Path("/proc/cpuinfo").read_text().split()
    expected = "aes128-gcm@openssh.com" if has_aes else "chacha20-poly1305@openssh.com"
    assert _negotiated_cipher(sshd) == expected

    monkeypatch.setenv("MACKUPER_SSH_CIPHERS", "default")
    assert _negotiated_cipher(sshd) == "chacha20-poly1305@openssh.com"  # OpenSSH's first
    monkeypatch.setenv("MACKUPER_SSH_CIPHERS", "aes256-ctr")
    assert _negotiated_cipher(sshd) == "aes256-ctr"

    monkeypatch.setenv("MACKUPER_SSH_CIPHERS", "aes256-ctr; touch /tmp/x")
    with pytest.raises(SSHError, match="MACKUPER_SSH_CIPHERS=.* is not an OpenSSH cipher list"):
        OpenSSHSession(target_for(sshd, "key"))


def test_sftp_file_opened_after_the_connection_broke_fails_as_a_lost_connection(
    sshd: SSHServer,
) -> None:
    """The next file's open finds the connection gone, by whichever error paramiko picks.

    Closing the packetizer is what paramiko does when the socket dies under it; in
    the moment before the transport notices, a request raises EOFError (the case
    the stopped-sshd test met now and then), afterwards OSError or SSHException.
    """
    tree = every_kind_remote_tree(sshd, sshd.users["key"].username)
    target = target_for(sshd, "key", retry_seconds=0)  # no reconnecting: fail at once
    for wait_for_the_transport in (False, True):
        link = _Link(target)
        transport = link.transport
        assert transport is not None
        try:
            transport.packetizer.close()
            deadline = time.monotonic() + 10
            while wait_for_the_transport and transport.is_active():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            remote = _RemoteFile(link, str(tree / "medium.bin"), 3 * 1024 * 1024 + 17)
            with pytest.raises(SSHError, match="lost"):
                remote.start()
        finally:
            with contextlib.suppress(EOFError, OSError):
                link.sftp.close()
            link.close()
