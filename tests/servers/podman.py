"""A real container engine for tests: podman's Docker-compatible API service.

`podman system service --time=0 unix:///tmp/<x>.sock` serves the Docker Engine API
that Mackuper's Docker SDK client speaks; the same code talks to Docker. Images come
from the local base that ../shared/tools/container-base.sh builds
(`localhost/debian:bookworm`): no registry is reached.

Podman runs health checks from systemd timers, which this machine lacks, so the
fixture runs `podman healthcheck run` for the test's running containers every
half second: the job Docker's daemon does by itself.

Where podman or the base image is missing, tests skip with the reason printed; under
CI=true (beside the workplace tools, where scripts/test installs them) they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT.parent / "shared" / "tools" / "containers.conf"
BASE_IMAGE = "localhost/debian:bookworm"
TEST_LABEL = "mackuper-test"


def podman_env() -> dict[str, str]:
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env and CONF.is_file():
        env["CONTAINERS_CONF"] = str(CONF)
    env.pop("DOCKER_HOST", None)
    return env


def podman(
    *args: str, check: bool = True, timeout: float = 120, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def skip_reason() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (apt-get install podman; see container-base.sh)"
    if podman("image", "exists", BASE_IMAGE, check=False, timeout=60).returncode != 0:
        return f"{BASE_IMAGE} is missing: run ../shared/tools/container-base.sh to build it"
    return None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the container engine tests cannot run in CI: {reason}")
    print(f"\ncontainer engine tests skipped: {reason}")
    pytest.skip(reason)


@dataclass
class PodmanEngine:
    """A running `podman system service`; `url` is what Mackuper's setting takes."""

    url: str
    session: str
    """Value of the TEST_LABEL label on everything the tests make (removed at the end)."""
    client: Any = None
    checked: set[str] = field(default_factory=set)

    def labels(self, **more: str) -> dict[str, str]:
        return {TEST_LABEL: self.session, **more}

    def events(self, since: float, until: float) -> list[dict[str, Any]]:
        """The engine's container events between two times (seconds since the epoch)."""
        return list(
            self.client.events(
                since=int(since), until=int(until) + 1, decode=True, filters={"type": "container"}
            )
        )


def _health_ticker(engine: PodmanEngine, stop: threading.Event) -> None:
    with_check: dict[str, bool] = {}
    while not stop.wait(0.5):
        try:
            running = engine.client.api.containers(
                filters={"label": TEST_LABEL, "status": "running"}
            )
            for summary in running:
                identifier = summary["Id"]
                if identifier not in with_check:
                    config = engine.client.api.inspect_container(identifier)["Config"]
                    test = (config.get("Healthcheck") or {}).get("Test") or []
                    with_check[identifier] = bool(test) and test[0] != "NONE"
                if with_check[identifier]:
                    podman("healthcheck", "run", identifier, check=False, timeout=30)
        except Exception:  # noqa: BLE001, S112 - a container went away meanwhile; look again
            continue


@contextlib.contextmanager
def running_podman() -> Iterator[PodmanEngine]:
    """podman's API service on a fresh socket, with the health ticker; everything made
    with the session label is removed afterwards."""
    session = uuid.uuid4().hex[:10]
    socket_path = Path(f"/tmp/mackuper-podman-{session}.sock")  # noqa: S108 - a test socket
    url = f"unix://{socket_path}"
    log_path = socket_path.with_suffix(".log")
    log = log_path.open("wb")
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", url],
        env=podman_env(),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    engine = PodmanEngine(url=url, session=session)
    stop = threading.Event()
    ticker: threading.Thread | None = None
    try:
        deadline = time.monotonic() + 30
        while True:
            if service.poll() is not None:
                error = log_path.read_text(errors="replace")
                raise RuntimeError(f"podman system service exited: {error[-500:]}")
            if socket_path.exists():
                try:
                    client = docker.DockerClient(base_url=url, timeout=60)
                    client.ping()
                    engine.client = client
                    break
                except Exception:  # noqa: BLE001, S110 - not answering yet
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("podman system service did not answer within 30 s")
            time.sleep(0.1)
        ticker = threading.Thread(target=_health_ticker, args=(engine, stop), daemon=True)
        ticker.start()
        yield engine
    finally:
        stop.set()
        if ticker is not None:
            ticker.join(timeout=30)
        label = f"label={TEST_LABEL}={session}"
        ids = podman("ps", "-aq", "--filter", label, check=False).stdout.split()
        ids += podman("ps", "-aq", "--filter", "label=mackuper.helper", check=False).stdout.split()
        if ids:
            podman("rm", "-f", "-t", "0", *ids, check=False)
        volumes = podman("volume", "ls", "-q", "--filter", label, check=False).stdout.split()
        if volumes:
            podman("volume", "rm", "-f", *volumes, check=False)
        if engine.client is not None:
            engine.client.close()
        service.terminate()
        try:
            service.wait(timeout=15)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        log.close()
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        with contextlib.suppress(FileNotFoundError):
            log_path.unlink()


@pytest.fixture(scope="session")
def podman_engine() -> Iterator[PodmanEngine]:
    """podman's Docker-compatible API service (see the module docstring)."""
    reason = skip_reason()
    if reason is not None:
        skip_or_fail(reason)
    with running_podman() as engine:
        yield engine


POSTGRES_IMAGE = "localhost/mackuper-test-postgres:15"
IMAGES = Path(__file__).resolve().parent / "images"


@pytest.fixture(scope="session")
def postgres_image(podman_engine: PodmanEngine) -> Iterator[str]:
    """PostgreSQL 15 from Debian in an image built over the local base
    (tests/servers/images/postgres), built when missing and removed at the end unless
    MACKUPER_KEEP_TEST_IMAGES=1 (a build takes about a minute)."""
    built = False
    if podman("image", "exists", POSTGRES_IMAGE, check=False).returncode != 0:
        started = time.monotonic()
        result = podman(
            "build", "--format", "docker", "-t", POSTGRES_IMAGE, str(IMAGES / "postgres"),
            check=False, timeout=900,
        )  # fmt: skip
        if result.returncode != 0:
            skip_or_fail(f"the PostgreSQL test image did not build: {result.stderr[-500:]}")
        built = True
        print(f"\nbuilt {POSTGRES_IMAGE} in {time.monotonic() - started:.0f} s")
    yield POSTGRES_IMAGE
    if built and os.environ.get("MACKUPER_KEEP_TEST_IMAGES") != "1":
        podman("rmi", "-f", POSTGRES_IMAGE, check=False)
