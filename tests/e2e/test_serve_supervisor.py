"""`mackuper serve` keeps only a small supervisor once its children run.

serve checks the configuration and migrates with SQLAlchemy and Alembic loaded,
then replaces itself with `mackuper.cli.supervise`, which loads neither: the
process that only watches the web and worker stays small (it held ~100 MiB before).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import peak_rss, running_mackuper
from tests.servers.process import descendant_pids

pytestmark = pytest.mark.e2e

SUPERVISOR_LIMIT = 40 << 20
"""It measures ~20 MiB; the interpreter with SQLAlchemy and the models takes ~80 MiB."""


def _command(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


def test_the_serve_process_is_a_small_supervisor_of_web_and_worker(tmp_path: Path) -> None:
    with running_mackuper(tmp_path / "data") as server:
        assert server.server is not None and server.server.pid is not None
        pid = server.server.pid
        assert peak_rss(pid) < SUPERVISOR_LIMIT, f"{peak_rss(pid) >> 20} MiB"
        children = [_command(child) for child in descendant_pids(pid)]
        assert "mackuper.cli.supervise" in _command(pid), _command(pid)
        assert any(command[-1] == "worker" for command in children), children
        assert any("web" in command for command in children), children
        log = (tmp_path / "data" / "logs" / "mackuper.log").read_text()
    assert "serving on http://127.0.0.1" in log
