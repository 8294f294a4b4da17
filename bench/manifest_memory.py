"""A run's peak memory against its file count: Mackuper beside GNU tar and restic.

    .venv/bin/python -m bench.manifest_memory [--files 200000] [--skip-restic]
        [--baseline-tree /tmp/old] [--incremental]

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

With --incremental, the cases are a chain's second point instead: after a full
(not measured) and its chain state stored as the database keeps it (zlib), every
tenth file is touched and the measured child reads the state back and runs the
incremental (plain TAR) that compares every file with it; beside it, GNU tar's
second `--listed-incremental` run and restic's second backup of the same tree.
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

CHILD_INCREMENTAL = """
import io, json, sys, time, zlib
from datetime import UTC, datetime, timedelta
from mackuper.destinations.local import LocalDestination
from mackuper.pipeline.incremental import ChainPlan
from mackuper.pipeline.run import BackupPlan, run_backup
from mackuper.sources.local import LocalSource
from tests.integration.engine_support import RecordingHooks
try:
    from mackuper.pipeline.chainstate import read_state, write_state
except ImportError:  # a tree from before pipeline/chainstate.py: the state read whole
    from mackuper.pipeline.incremental import write_state
    def read_state(stored):
        return json.loads(zlib.decompress(stored))

source, target, state, phase = sys.argv[1:5]
def plan(chain, started):
    return BackupPlan(
        job_id=1, job_slug="many", job_name="Many files", run_id=1, archive_format="tar",
        compression_level=None, source=LocalSource([source]),
        destinations={1: LocalDestination(target)}, started_at=started, chain=chain,
    )
if phase == "full":
    result = run_backup(plan(ChainPlan(level=0), datetime.now(UTC)), RecordingHooks())
    out = io.BytesIO()
    write_state(result.entries, result.archive_name, out)
    with open(state, "wb") as kept:
        kept.write(zlib.compress(out.getvalue(), 6))
    print(result.archive_name)
else:
    with open("/proc/self/status") as status:
        before = next(line for line in status if line.startswith("VmRSS:")).split()[1]
    print(int(before) // 1024)
    started = time.perf_counter()
    with open(state, "rb") as kept:
        previous = read_state(kept.read())
    chain = ChainPlan(level=1, earlier=(phase,), previous=previous)
    result = run_backup(plan(chain, datetime.now(UTC) + timedelta(hours=1)), RecordingHooks())
    print(result.files, round(time.perf_counter() - started, 2))
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


def incremental(tree: Path, source: Path, out: Path, count: int) -> tuple[int, int, str]:
    """(peak MiB, RSS before MiB, "entries seconds") of the second point, with the code
    of `tree` (seconds: reading the state back and the run); touches every tenth file
    of `source` between the points."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}:{tree}"}
    state = out / "state.zlib"
    _, name = peak_of(
        [sys.executable, "-c", CHILD_INCREMENTAL, str(source), str(out), str(state), "full"], env
    )
    touch_tenth(source, count)
    peak, printed = peak_of(
        [sys.executable, "-c", CHILD_INCREMENTAL, str(source), str(out), str(state), name.strip()],
        env,
    )
    before, files, seconds = printed.split()
    return peak, int(before), f"{files} entries written, {seconds} s"


def touch_tenth(source: Path, count: int) -> None:
    """Moves the mtime of every tenth file of make_tree's tree on by a second. By name,
    not by listing the tree: a list of a million paths in this process would show in
    every later child's peak (subprocess starts children with vfork, and a child's
    ru_maxrss then starts from its parent's high-water mark: measured, a 300 MiB
    parent's `python -c pass` reported 310 MiB, even after the parent freed it)."""
    for index in range(0, count, 10):
        path = source / f"d{index // 500:04d}" / f"file-{index:07d}.txt"
        info = path.stat()
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))


def main_incremental(args: argparse.Namespace, here: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        trees = [("this tree", here)]
        if args.baseline_tree is not None:
            trees.insert(0, ("baseline", args.baseline_tree.resolve()))
        rows: list[tuple[str, str]] = []
        for label, tree in trees:
            source = root / f"source-{label}".replace(" ", "-")
            make_tree(source, args.files)
            out = root / f"out-{label}".replace(" ", "-")
            out.mkdir()
            peak, before, files = incremental(tree, source, out, args.files)
            name = f"mackuper {label}, second point (incremental)"
            rows.append((name, f"{peak} MiB peak ({before} MiB before the run; {files})"))
            print(rows[-1][0], rows[-1][1], flush=True)
        source = root / "source-tools"
        make_tree(source, args.files)
        snapshot = root / "gnu.snar"
        tar = ["tar", "--listed-incremental", str(snapshot), "-C", str(source), "-cf"]
        peak_of([*tar, str(root / "gnu-0.tar"), "."])
        if not args.skip_restic:
            env = {**os.environ, "RESTIC_PASSWORD": "bench"}
            repository = root / "restic"
            restic = ["restic", "-q", "-r", str(repository)]
            subprocess.run([*restic, "init"], env=env, check=True)  # noqa: S603
            peak_of([*restic, "backup", str(source)], env)
        touch_tenth(source, args.files)
        tar_peak, _ = peak_of([*tar, str(root / "gnu-1.tar"), "."])
        rows.append(("GNU tar --listed-incremental, second run", f"{tar_peak} MiB peak"))
        if not args.skip_restic:
            restic_peak, _ = peak_of([*restic, "backup", str(source)], env)
            rows.append(("restic second backup", f"{restic_peak} MiB peak"))
        print(f"\n{args.files:,} one-byte files, 500 to a directory, every tenth touched")
        for name, figure in rows:
            print(f"| {name} | {figure} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--skip-restic", action="store_true")
    parser.add_argument("--baseline-tree", type=Path)
    parser.add_argument("--incremental", action="store_true")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    if args.incremental:
        main_incremental(args, here)
        return
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
