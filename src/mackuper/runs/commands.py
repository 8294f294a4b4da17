"""Pre and post commands: run with a timeout, their output into the run log.

They run around every run of a job, whatever its kind (MACKUPER_KIND says which:
backup, restore or verify), as the lifecycle in `runs/lifecycle.py` decides.
`Job.hooks` holds `{"pre": {"command": ..., "timeout": 600, "on_failure": "abort"},
"post": {...}}`. A command runs with /bin/sh in its own process group, so a timeout
kills everything it started. The post command learns the outcome from
MACKUPER_STATUS, MACKUPER_ERROR, MACKUPER_ARCHIVE, MACKUPER_SIZE and friends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mackuper.pipeline.errors import PipelineError

POLICIES = ("abort", "warn")
DEFAULT_TIMEOUT = 600
MAX_OUTPUT_LINES = 200
KILL_GRACE = 5.0
_HIDDEN_ENV = ("MACKUPER_MASTER_KEY", "SECRET_KEY", "MACKUPER_METRICS_TOKEN", "DATABASE_URL")

Log = Callable[[str, str], None]


class HookError(PipelineError):
    """A pre command failed and its policy is to abort the run."""


@dataclass(frozen=True)
class Hook:
    name: str
    """pre or post."""
    command: str
    timeout: float
    on_failure: str
    """abort: the run fails; warn: the run ends as warning at worst."""


def load(hooks: dict[str, Any], name: str) -> Hook | None:
    """The stored `name` hook of a job, or None when it has no command."""
    spec = hooks.get(name)
    if not isinstance(spec, dict) or not str(spec.get("command") or "").strip():
        return None
    default_policy = "abort" if name == "pre" else "warn"
    policy = str(spec.get("on_failure") or default_policy)
    return Hook(
        name=name,
        command=str(spec["command"]),
        timeout=float(spec.get("timeout") or DEFAULT_TIMEOUT),
        on_failure=policy if policy in POLICIES else default_policy,
    )


@dataclass(frozen=True)
class HookResult:
    ok: bool
    problem: str | None = None
    """Why it failed, in a few words ("exited with status 3", "timed out after 5 s")."""


def hook_environment(values: Mapping[str, object]) -> dict[str, str]:
    """The worker's environment without its secrets, plus MACKUPER_* `values`."""
    environment = {k: v for k, v in os.environ.items() if k not in _HIDDEN_ENV}
    environment.update(
        {f"MACKUPER_{k.upper()}": "" if v is None else str(v) for k, v in values.items()}
    )
    return environment


def run_hook(
    hook: Hook,
    environment: Mapping[str, str],
    log: Log,
    cwd: str | None = None,
    stopping: threading.Event | None = None,
    action: str = "backup",
) -> HookResult:
    """Run `hook` to its end (or its timeout) and log its output; never raises.

    `action` is the run's kind, as the log names the command ("pre-restore command").
    """
    label = f"{hook.name}-{action} command"
    log("info", f"{label} started (timeout {hook.timeout:g} s)")
    started = time.monotonic()
    try:
        process = subprocess.Popen(  # noqa: S603 - running the user's own command is the feature
            ["/bin/sh", "-c", hook.command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(environment),
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as error:
        return _failed(hook, label, log, f"could not be started ({error.strerror})")
    output = process.stdout
    reader = threading.Thread(
        target=_copy_output, args=(output, hook.name, log), daemon=True, name="hook"
    )
    reader.start()
    deadline = started + hook.timeout
    problem: str | None = None
    while process.poll() is None:
        if time.monotonic() >= deadline:
            problem = f"timed out after {hook.timeout:g} s and was killed"
            break
        if stopping is not None and stopping.is_set():
            problem = "was stopped because the worker is shutting down"
            break
        try:
            process.wait(timeout=min(0.2, max(0.01, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            continue
    if problem is not None:
        _kill_group(process)
    reader.join(KILL_GRACE)
    if not reader.is_alive() and output is not None:
        output.close()
    elapsed = time.monotonic() - started
    if problem is None and process.returncode != 0:
        problem = f"exited with status {process.returncode}"
    if problem is not None:
        return _failed(hook, label, log, problem)
    log("info", f"{label} finished in {elapsed:.1f} s")
    return HookResult(ok=True)


def _failed(hook: Hook, label: str, log: Log, problem: str) -> HookResult:
    level = "error" if hook.on_failure == "abort" else "warning"
    log(level, f"{label} {problem}")
    return HookResult(ok=False, problem=problem)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, KILL_GRACE)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            # The shell is gone; kill what it left in its group too.
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
        return


def _copy_output(stream: Any, name: str, log: Log) -> None:
    lines = 0
    for raw in stream:
        lines += 1
        if lines <= MAX_OUTPUT_LINES:
            text = raw.decode(errors="replace").rstrip()
            log("info", f"[{name}] {text}")
    if lines > MAX_OUTPUT_LINES:
        log("info", f"[{name}] ... {lines - MAX_OUTPUT_LINES} more line(s) not kept")
