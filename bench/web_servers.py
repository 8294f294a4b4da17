"""Which web server keeps the UI up under slow clients, and what it costs in speed.

    .venv/bin/python -m bench.web_servers [--servers gthread,uvicorn,...] [--slow 64]
        [--seconds 20] [--mib 200] [--dir /var/tmp]

Makes one installation (admin, a local destination, a --mib MiB backup of random
data in a plain tar) with `mackuper serve`, then starts only the web side on that data
directory once per server, on loopback, WEB_CONCURRENCY=2, and measures:

- slow clients: --slow connections trickling one header byte every 2 to 5 s
  (tests/slow_clients.py) held for --seconds s while /login is fetched every 0.5 s;
  median and max latency, and how many probes failed (3 s timeout);
- fast page: /login (logged out, rendered template) from 8 keep-alive clients for 5 s;
- download: the backup through GET /api/backups/<id>/download, 1 MiB reads, best of 2;
- peak RSS: the largest web process's peak resident memory over the whole run.

Servers: `gthread` (gunicorn as before: 4 threads a process), `gthread-64` (64 threads
a process), `uvicorn` (gunicorn with Mackuper's AsyncWorker, h11 parser),
`uvicorn-httptools` (the same with the httptools parser), `waitress` (8 threads, one
process: waitress has no worker processes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
from tests.harness import BrowserClient, MackuperProcess, peak_rss
from tests.servers.ports import free_port
from tests.servers.process import descendant_pids
from tests.slow_clients import probe_while_held

SERVERS = ["gthread", "gthread-64", "uvicorn", "uvicorn-httptools", "waitress"]
MIB = 1 << 20


def serve(server: str, host: str) -> None:
    """Run only the web side with `server` (the child process of `measure`)."""
    from gunicorn.app.base import BaseApplication

    from mackuper.config import load_settings
    from mackuper.gunicorn_conf import AsyncWorker, options
    from mackuper.logs import configure_logging
    from mackuper.runtime import open_runtime
    from mackuper.web import create_app

    settings = load_settings()
    configure_logging(settings, "web")
    app = create_app(open_runtime(settings, migrate=False))
    if server == "waitress":
        import waitress

        waitress.serve(app, host=host, port=settings.port, threads=8)
        return

    class HttptoolsWorker(AsyncWorker):
        CONFIG_KWARGS = {**AsyncWorker.CONFIG_KWARGS, "http": "httptools"}  # noqa: RUF012

    chosen = options(settings, host)
    if server.startswith("gthread"):
        chosen.update(worker_class="gthread", threads=64 if server == "gthread-64" else 4)
    elif server == "uvicorn-httptools":
        chosen["worker_class"] = HttptoolsWorker

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in chosen.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    Server().run()


def prepare(data_dir: Path, mib: int) -> int:
    """Set up an installation with a `mib` MiB backup; the backup's artifact id."""
    source = data_dir.parent / "source"
    source.mkdir(parents=True)
    block = os.urandom(MIB)
    for index in range(4):
        with (source / f"part-{index}.bin").open("wb") as handle:
            for _ in range(mib // 4):
                handle.write(block)
    process = MackuperProcess(data_dir, {"WEB_CONCURRENCY": "2"}).start()
    try:
        client = BrowserClient(process.url)
        destination = client.complete_setup(
            {"name": "Disk", "kind": "local", "path": str(data_dir.parent / "storage")}
        )
        job = client.create_job("Bench", source, destination["id"], archive_format="tar")
        run_id = client.ok("POST", f"/api/jobs/{job['id']}/run")["run"]["id"]
        run = client.wait_run(run_id, timeout=600)
        assert run["status"] == "success", run
        artifact_id: int = run["artifacts"][0]["id"]
    except AssertionError:
        print(process.log(), file=sys.stderr)
        raise
    finally:
        process.stop()
    shutil.rmtree(source)
    return artifact_id


def fast_page_rate(url: str, clients: int = 8, seconds: float = 5) -> float:
    """Requests a second for `url` from `clients` keep-alive threads."""
    counts = [0] * clients
    deadline = time.monotonic() + seconds

    def hammer(index: int) -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                if session.get(url, timeout=10).status_code == 200:
                    counts[index] += 1

    threads = [threading.Thread(target=hammer, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def download_rate(base_url: str, artifact_id: int) -> float:
    """MiB/s of the best of two whole downloads of the backup, logged in."""
    client = BrowserClient(base_url)
    client.login()
    best = 0.0
    for _ in range(2):
        started = time.monotonic()
        received = 0
        with client.http.get(
            f"{base_url}/api/backups/{artifact_id}/download", stream=True, timeout=60
        ) as response:
            response.raise_for_status()
            for chunk in response.iter_content(MIB):
                received += len(chunk)
        best = max(best, received / MIB / (time.monotonic() - started))
    return best


def measure(
    server: str, data_dir: Path, artifact_id: int, slow: int, seconds: float
) -> dict[str, Any]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MACKUPER_"))},
        "MACKUPER_DATA_DIR": str(data_dir),
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
    }
    log = (data_dir / f"bench-{server}.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.web_servers", "--serve", server],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError(f"{server} did not start; see {log.name}")
            time.sleep(0.2)
        probes, clients = probe_while_held(url + "/login", port, slow, seconds)
        time.sleep(1)
        rate = fast_page_rate(url + "/login")
        download = download_rate(url, artifact_id)
        memory = max(peak_rss(pid) for pid in [child.pid, *descendant_pids(child.pid)])
    finally:
        child.terminate()
        child.wait(timeout=30)
        log.close()
    latencies = [latency for latency, _ in probes]
    return {
        "server": server,
        "probes": len(probes),
        "failed": sum(status != 200 for _, status in probes),
        "median": statistics.median(latencies),
        "max": max(latencies),
        "dropped": clients.dropped,
        "page_rate": rate,
        "download": download,
        "peak_rss": memory / MIB,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--slow", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, "127.0.0.1")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-web-", dir=args.dir))
    try:
        artifact_id = prepare(work / "data", args.mib)
        print(
            "| server | /login probes failed | median | max | slow conns dropped "
            "| /login req/s | download MiB/s | peak RSS MiB |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for server in args.servers.split(","):
            row = measure(server, work / "data", artifact_id, args.slow, args.seconds)
            print(
                f"| {row['server']} | {row['failed']} of {row['probes']} "
                f"| {row['median']:.3f} s | {row['max']:.3f} s | {row['dropped']} "
                f"| {row['page_rate']:.0f} | {row['download']:.0f} | {row['peak_rss']:.0f} |",
                flush=True,
            )
        print(f"load average: {os.getloadavg()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
