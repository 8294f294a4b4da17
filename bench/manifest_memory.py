"""A run's peak memory against its file count: Mackuper beside GNU tar and restic.

    .venv/bin/python -m bench.manifest_memory [--files 200000] [--skip-restic]
        [--baseline-tree /tmp/old]

Makes a tree of --files one-byte files (500 to a directory) in a temporary
directory, then runs each case in a fresh child process and reports its peak RSS
(the child's own `ru_maxrss`, from wait4):

- mackuper: `run_backup` in the child (local source, TAR, local destination), plain
  and with one age recipient; the child also prints its RSS before the run (Python
  and Mackuper's imports), so the run's own share shows;
- GNU tar: `tar -cf FILE DIR`;
- restic: its first backup of the tree into a fresh local repository.

With --baseline-tree (for example `git worktree add /tmp/old <commit>`), the
Mackuper cases run with that tree's code too, in the same run, for a side-by-side.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import sys
from datetime import UTC, datetime
from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.age import X25519Identity
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.sources.local import LocalSource
from tests.integration.engine_support import RecordingHooks

source, target, encrypted = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
with open("/proc/self/status") as status:
    before = next(line for line in status if line.startswith("VmRSS:")).split()[1]
print(int(before) // 1024)
plan = BackupPlan(
    job_id=1, job_slug="many", job_name="Many files", run_id=1, archive_format="tar",
    compression_level=None, source=LocalSource([source]),
    destinations={1: LocalDestination(target)}, started_at=datetime.now(UTC),
    encryption=[X25519Identity.generate().recipient()] if encrypted else None,
)
result = run_backup(plan, RecordingHooks())
print(result.files)
"""

MIB = 1024  # ru_maxrss is in KiB


def make_tree(root: Path, count: int) -> None:
    for index in range(count):
        folder = root / f"d{index // 500:04d}"
        if index % 500 == 0:
            folder.mkdir(parents=True)
        (folder / f"file-{index:07d}.txt").write_bytes(b"x")


def peak_of(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """The child's peak RSS in MiB and what it printed."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, text=True) as child:  # noqa: S603
        output = child.stdout.read() if child.stdout else ""
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{argv[0]} failed ({child.returncode})")
    return usage.ru_maxrss // MIB, output


def mackuper(tree: Path, source: Path, out: Path, encrypted: bool) -> tuple[int, int, str]:
    """(peak MiB, RSS before the run MiB, files) with the code of `tree`."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}:{tree}"}
    peak, printed = peak_of(
        [sys.executable, "-c", CHILD, str(source), str(out), "1" if encrypted else "0"], env
    )
    before, files = printed.split()
    return peak, int(before), files


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--skip-restic", action="store_true")
    parser.add_argument("--baseline-tree", type=Path)
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        source = root / "source"
        make_tree(source, args.files)
        rows: list[tuple[str, str]] = []
        trees = [("this tree", here)]
        if args.baseline_tree is not None:
            trees.insert(0, ("baseline", args.baseline_tree.resolve()))
        for label, tree in trees:
            for encrypted in (False, True):
                out = root / f"out-{label}-{encrypted}".replace(" ", "-")
                out.mkdir()
                peak, before, files = mackuper(tree, source, out, encrypted)
                name = f"mackuper {label}, {'one age recipient' if encrypted else 'plain'}"
                rows.append(
                    (name, f"{peak} MiB peak ({before} MiB before the run; {files} entries)")
                )
                print(rows[-1][0], rows[-1][1], flush=True)
        tar_peak, _ = peak_of(["tar", "-cf", str(root / "gnu.tar"), "-C", str(source), "."])
        rows.append(("GNU tar -cf", f"{tar_peak} MiB peak"))
        if not args.skip_restic:
            env = {**os.environ, "RESTIC_PASSWORD": "bench"}
            repository = root / "restic"
            subprocess.run(["restic", "-q", "-r", str(repository), "init"], env=env, check=True)  # noqa: S603, S607
            restic_peak, _ = peak_of(
                ["restic", "-q", "-r", str(repository), "backup", str(source)], env
            )
            rows.append(("restic first backup", f"{restic_peak} MiB peak"))
        print(f"\n{args.files:,} one-byte files, 500 to a directory")
        for name, figure in rows:
            print(f"| {name} | {figure} |")


if __name__ == "__main__":
    main()
