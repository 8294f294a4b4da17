"""A worker started afresh loads, before it measures its start, what its predecessor's
runs had loaded (worker/service.py `Worker.for_successor`, `Worker.warm_up`): otherwise those
libraries count as growth, and a worker whose runs need them starts afresh after each."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from mackuper.runtime import Runtime
from mackuper.worker.service import PRELOAD, Worker


def test_a_worker_started_afresh_first_loads_what_its_predecessor_loaded(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "mkp_loaded_by_a_run"
    package.mkdir()
    (package / "__init__.py").write_text("LOADED = True\n")
    (package / "part.py").write_text("PART = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = Worker(runtime, worker_id="before")
    assert before.for_successor() == {}
    import mkp_loaded_by_a_run.part  # noqa: F401 - what a run would load

    handed_on = before.for_successor()
    assert handed_on == {PRELOAD: "mkp_loaded_by_a_run"}

    # The image that replaces it: a process where nothing loaded the package yet.
    for name in ("mkp_loaded_by_a_run", "mkp_loaded_by_a_run.part"):
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setenv(PRELOAD, handed_on[PRELOAD] + ",mkp_no_such_package")
    after = Worker(runtime, worker_id="after")
    after.warm_up()
    assert "mkp_loaded_by_a_run" in sys.modules
    assert PRELOAD not in os.environ  # not passed on to the runs' commands
    # It hands the package on in turn, should it start afresh again.
    assert after.for_successor() == {PRELOAD: "mkp_loaded_by_a_run"}
