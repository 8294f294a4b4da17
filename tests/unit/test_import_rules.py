"""The layering in pyproject.toml ([tool.importlinter]) holds, and it would catch a cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(project / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(project / "pyproject.toml")],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_import_rules_hold_for_the_code_as_it_is() -> None:
    result = _lint_imports(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_import_rules_fail_when_a_lower_package_imports_a_higher_one(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        ROOT / "src" / "mackuper",
        tmp_path / "src" / "mackuper",
        ignore=shutil.ignore_patterns("__pycache__", "static", "templates"),
    )
    # restore <- runs <- worker: restore importing the worker closes a cycle.
    with (tmp_path / "src" / "mackuper" / "restore" / "errors.py").open("a") as module:
        module.write("\nfrom mackuper.worker import service as _service  # noqa: E402, F401\n")

    result = _lint_imports(tmp_path)

    assert result.returncode != 0
    assert "No import cycles between the packages and modules of mackuper BROKEN" in result.stdout
    assert "Packages form layers: a layer imports only the layers below it BROKEN" in result.stdout
