"""A Docker Engine API: connect, describe, list, stop, start and wait for health.

One client for Docker and for podman's Docker-compatible service (`podman system
service`): the Docker SDK for Python speaks the Engine API, which both serve. Tests
run against podman; the calls used here (version, info, containers, volumes,
archive, stop, start, inspect) are the same on Docker.

The address is a URL (`unix:///var/run/docker.sock`, `tcp://host:2375`) or a socket
path; empty means `DOCKER_HOST`, else Docker's default socket.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from mackuper.sources.base import SourceError

# The Docker SDK is imported where it is used: a worker that never talks to an engine
# does not carry it (tests/unit/test_worker_memory.py).

DEFAULT_ADDRESS = "unix:///var/run/docker.sock"
LABEL_PREFIX = "mackuper."
STOP_LABEL = "mackuper.stop-during-backup"
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_DEPENDS_ON = "com.docker.compose.depends_on"
API_TIMEOUT = 60


class EngineError(SourceError):
    """The container engine cannot be reached or refused a request."""


def address(setting: str | None, env: dict[str, str] | None = None) -> str:
    """The engine URL to use: the setting, else DOCKER_HOST, else Docker's socket.

    A bare absolute path is a UNIX socket.
    """
    environment = os.environ if env is None else env
    chosen = (setting or "").strip() or environment.get("DOCKER_HOST", "").strip()
    if not chosen:
        return DEFAULT_ADDRESS
    return f"unix://{chosen}" if chosen.startswith("/") else chosen


def check_address(text: str) -> str | None:
    """Why `text` is not an engine address, or None when it is one (empty is allowed)."""
    text = text.strip()
    if not text or text.startswith("/"):
        return None
    scheme, separator, rest = text.partition("://")
    if not separator or scheme not in {"unix", "tcp", "http", "https"} or not rest:
        return (
            "Use a socket path (/var/run/docker.sock) or a URL such as"
            " unix:///var/run/docker.sock or tcp://host:2375."
        )
    return None


def _unreachable(error: BaseException) -> BaseException | None:
    """The connection failure somewhere in `error`'s chain, if that is what it is."""
    import requests  # noqa: PLC0415 - loaded only once an engine is used

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, requests.exceptions.ConnectionError | ConnectionError):
            return seen
        if isinstance(seen, FileNotFoundError | PermissionError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _explain(error: Exception, where: str) -> EngineError:
    import docker.errors  # noqa: PLC0415 - loaded only once an engine is used

    if (cause := _unreachable(error)) is not None and not isinstance(error, docker.errors.APIError):
        if isinstance(cause, PermissionError) or "Permission denied" in str(error):
            return EngineError(
                f"{where}: permission denied on the engine's socket (is it mounted, and"
                " readable by Mackuper's user?)"
            )
        text = str(error)
        if "No such file or directory" in text or isinstance(cause, FileNotFoundError):
            why = "no socket at that path"
        elif "Connection refused" in text:
            why = "connection refused"
        else:
            why = _short(cause)
        return EngineError(f"{where}: the container engine does not answer ({why})")
    if isinstance(error, docker.errors.NotFound):
        return EngineError(f"{where}: {error.explanation or 'not found'}")
    if isinstance(error, docker.errors.APIError):
        return EngineError(f"{where}: {error.explanation or error}")
    return EngineError(f"{where}: {_short(error)}")


def _short(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) < 300 else text[:300] + "..."


@contextmanager
def engine_call(where: str) -> Iterator[None]:
    """Turns the SDK's and the transport's exceptions into EngineError naming `where`."""
    try:
        yield
    except EngineError:
        raise
    except Exception as error:
        # The SDK and requests are loaded only once an engine is used (a worker that
        # never talks to one stays ~6 MiB smaller; tests/unit/test_worker_memory.py).
        import docker.errors  # noqa: PLC0415
        import requests  # noqa: PLC0415

        if isinstance(
            error, requests.exceptions.RequestException | OSError | docker.errors.DockerException
        ):
            raise _explain(error, where) from error
        raise


API_VERSION = "1.41"
"""Every call used here is in Engine API 1.41 (Docker 20.10), which podman 4 serves and
newer Docker engines still accept. A fixed version also means that connecting does
no request yet ("auto" asks the engine, and leaves its socket open when that fails)."""


def connect(url: str) -> Any:
    """A docker.DockerClient for `url` (no request made yet); EngineError when the URL
    is unusable. Close it after use."""
    where = f"the container engine at {url}"
    if url.startswith("unix://"):
        # The SDK leaves a socket open when a UNIX connect fails; try it here first.
        path = url.removeprefix("unix://")
        with socket.socket(socket.AF_UNIX) as probe:
            probe.settimeout(10)
            try:
                probe.connect(path)
            except FileNotFoundError as error:
                raise EngineError(f"{where}: no socket at {path}") from error
            except PermissionError as error:
                raise EngineError(
                    f"{where}: permission denied on the socket (is Mackuper's user in its group?)"
                ) from error
            except OSError as error:
                raise EngineError(
                    f"{where}: the container engine does not answer ({error.strerror or error})"
                ) from error
    with engine_call(where):
        from docker.client import DockerClient  # noqa: PLC0415 - see the imports

        return DockerClient(base_url=url, timeout=API_TIMEOUT, version=API_VERSION)


@dataclass(frozen=True)
class EngineInfo:
    address: str
    product: str
    version: str
    api_version: str
    containers: int
    running: int
    volumes: int
    images: int


def describe(url: str) -> EngineInfo:
    """Version and counts of the engine at `url` ("Test connection"); EngineError."""
    client = connect(url)
    try:
        with engine_call(f"the container engine at {url}"):
            version = client.version()
            info = client.info()
            volumes = client.api.volumes().get("Volumes") or []
        components = version.get("Components") or []
        product = components[0].get("Name", "Docker Engine") if components else "Docker Engine"
        return EngineInfo(
            address=url,
            product=str(product),
            version=str(version.get("Version", "")),
            api_version=str(version.get("ApiVersion", "")),
            containers=int(info.get("Containers") or 0),
            running=int(info.get("ContainersRunning") or 0),
            volumes=len(volumes),
            images=int(info.get("Images") or 0),
        )
    finally:
        client.close()


@dataclass
class Container:
    """What quiescing and discovery need to know of one container."""

    id: str
    name: str
    image: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    """Named volumes it mounts."""

    @property
    def service(self) -> str:
        return self.labels.get(COMPOSE_SERVICE, "") or self.name

    @property
    def project(self) -> str:
        return self.labels.get(COMPOSE_PROJECT, "")

    @property
    def depends_on(self) -> list[str]:
        """Compose service names it depends on (`db:service_healthy:false,cache:...`)."""
        raw = self.labels.get(COMPOSE_DEPENDS_ON, "")
        return [part.split(":", 1)[0].strip() for part in raw.split(",") if part.strip()]


def _container(summary: dict[str, Any]) -> Container:
    names = summary.get("Names") or [""]
    return Container(
        id=str(summary.get("Id", "")),
        name=str(names[0]).lstrip("/"),
        image=str(summary.get("Image", "")),
        status=str(summary.get("State", "")),
        labels=dict(summary.get("Labels") or {}),
        volumes=[
            str(mount.get("Name"))
            for mount in summary.get("Mounts") or []
            if mount.get("Type") == "volume" and mount.get("Name")
        ],
    )


def list_containers(client: Any) -> list[Container]:
    """Every container, running or not, sorted by name."""
    with engine_call("listing containers"):
        found = client.api.containers(all=True)
    return sorted((_container(summary) for summary in found), key=lambda item: item.name)


def list_volumes(client: Any) -> list[str]:
    with engine_call("listing volumes"):
        found = client.api.volumes().get("Volumes") or []
    return sorted(str(volume["Name"]) for volume in found)


def inspect(client: Any, container: str) -> dict[str, Any]:
    with engine_call(f"container {container}"):
        return dict(client.api.inspect_container(container))


def has_health_check(details: dict[str, Any]) -> bool:
    test = ((details.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
    return bool(test) and test[0] != "NONE"


def stop(client: Any, container: str, timeout: int = 30) -> None:
    with engine_call(f"stopping container {container}"):
        client.api.stop(container, timeout=timeout)


def start(client: Any, container: str) -> None:
    with engine_call(f"starting container {container}"):
        client.api.start(container)


def wait_ready(
    client: Any,
    container: str,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    poll: float = 0.25,
) -> str:
    """Wait until `container` is healthy (or running, without a health check).

    Returns "healthy" or "running"; EngineError when it exited, or was not ready
    within `timeout` seconds (the message says its last state).
    """
    deadline = time.monotonic() + timeout
    while True:
        details = inspect(client, container)
        state = details.get("State") or {}
        status = str(state.get("Status", ""))
        if status in {"exited", "dead"}:
            raise EngineError(
                f"container {container} exited (status {state.get('ExitCode')}) after its start"
            )
        health = str((state.get("Health") or {}).get("Status", ""))
        if not has_health_check(details):
            if status == "running":
                return "running"
        elif health == "healthy":
            return "healthy"
        if time.monotonic() >= deadline:
            said = f"health {health or 'starting'}" if has_health_check(details) else status
            raise EngineError(
                f"container {container} was not ready within {timeout:.0f} s ({said})"
            )
        sleep(poll)
