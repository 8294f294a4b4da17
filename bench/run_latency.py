"""How long a run waits for a worker, and how long its end waits to be seen.

    .venv/bin/python -m bench.run_latency [--runs 20] [--baseline-tree /tmp/old]
        [--postgres]

Starts `mackuper serve` (SQLite under a temp directory, or with --postgres a throwaway
PostgreSQL cluster from tests/servers), makes a job of three small files to a local
destination, then asks "Run now" --runs times, one after another, and reports medians
(the worker polls every second, the product's default):

- queued -> running: the run's own `started_at - created_at` (both stamped by the
  server: the web when it queues, the worker when it claims);
- end -> seen: from the run's `finished_at` to the first API response that reports a
  final status, with the client asking every 10 ms (so up to 10 ms of it is the client's);
- click -> seen: from sending "Run now" to that response, the whole wait a person has.

With --baseline-tree, the same is measured first with the code of that tree (for
example `git worktree add /tmp/old <commit>`), in the same run, for a side-by-side.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from tests.harness import FINAL_STATUSES, BrowserClient, running_mackuper

POLL = 0.01


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@contextlib.contextmanager
def _database(postgres: bool) -> Iterator[dict[str, str]]:
    if not postgres:
        yield {}
        return
    from tests.servers.postgres import running_postgres, temporary_database

    with running_postgres() as server, temporary_database(server) as name:
        yield {"DATABASE_URL": server.url(name)}


def measure(root: Path, runs: int, env: dict[str, str]) -> dict[str, float]:
    source = root / "source"
    source.mkdir(parents=True)
    for index in range(3):
        (source / f"file-{index}.txt").write_text(f"file {index}\n" * 100)
    queued, seen, waited = [], [], []
    # The product's poll interval, not the tests' quicker one.
    env = {"MACKUPER_WORKER_POLL_SECONDS": "1", **env}
    with running_mackuper(root / "data", env) as server:
        browser = BrowserClient(server.url)
        disk = browser.complete_setup({"name": "Disk", "kind": "local", "path": str(root / "out")})
        job = browser.create_job("Latency", source, disk["id"])
        for _ in range(runs):
            clicked = time.time()
            run = browser.ok("POST", f"/api/jobs/{job['id']}/run")["run"]
            while run["status"] not in FINAL_STATUSES:
                time.sleep(POLL)
                run = browser.ok("GET", f"/api/runs/{run['id']}")["run"]
            now = time.time()
            assert run["status"] == "success", run
            queued.append(_at(run["started_at"]) - _at(run["created_at"]))
            seen.append(now - _at(run["finished_at"]))
            waited.append(now - clicked)
    return {
        "queued -> running": statistics.median(queued),
        "end -> seen": statistics.median(seen),
        "click -> seen": statistics.median(waited),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--baseline-tree", type=Path)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    trees: dict[str, dict[str, str]] = {}
    if args.baseline_tree:
        tree = args.baseline_tree.resolve()
        trees["baseline"] = {"PYTHONPATH": f"{tree / 'src'}:{tree}"}
    trees["this tree"] = {}
    results: dict[str, dict[str, float]] = {}
    for name, tree_env in trees.items():
        with _database(args.postgres) as db_env, tempfile.TemporaryDirectory() as root:
            results[name] = measure(Path(root), args.runs, {**tree_env, **db_env})
    names = list(results)
    print(f"medians over {args.runs} runs ({'PostgreSQL' if args.postgres else 'SQLite'})")
    print(f"{'':20}" + "".join(f"{name:>14}" for name in names))
    for metric in results[names[0]]:
        cells = "".join(f"{results[name][metric] * 1000:>11.0f} ms" for name in names)
        print(f"{metric:20}{cells}")


if __name__ == "__main__":
    main()
