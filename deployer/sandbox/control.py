"""`deployer sandbox up|down|status`, seen from the CLI: start, find and stop the daemon."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from deployer.errors import BadInput, Unreachable
from deployer.sandbox.layout import Layout, read_json
from deployer.sandbox.processes import stop_process_group
from deployer.sandbox.profile import BEHAVIOURS_ENV, PROFILES, behaviours_for, profile_from_env

TIME_SCALE_ENV = "DEPLOYER_SANDBOX_TIME_SCALE"


@dataclass(frozen=True)
class SandboxState:
    pid: int
    endpoint: str
    region: str
    time_scale: float
    profile: str = "fast"
    cloudwatch_time_scale: float = 0.0  # real seconds per CloudWatch second (0: time_scale)


def _alive(pid: int) -> bool:
    # Reap it if it is our own child (`sandbox up` in this process), or it lingers a zombie.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def answers(endpoint: str) -> bool:
    try:
        # http loopback (bandit B310)
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):  # nosec B310
            return True
    except OSError:
        return False


def _is_daemon(pid: int) -> bool:
    """The pid is alive and is our daemon (not a process that reused a stale pid)."""
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc here: trust the pid
    return b"deployer.sandbox.daemon" in cmdline


def status(layout: Layout) -> SandboxState | None:
    """The running sandbox, or None. It counts as running while its process lives, also
    when it does not answer (an outage it models): starting a second one would wreck it.
    """
    raw = read_json(layout.state_file)
    if not raw or not _is_daemon(int(raw["pid"])):
        return None
    return SandboxState(
        int(raw["pid"]),
        raw["endpoint"],
        raw["region"],
        float(raw["time_scale"]),
        str(raw.get("profile", "fast")),
        float(raw.get("cloudwatch_time_scale") or raw["time_scale"]),
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _time_scale() -> str:
    raw = os.environ.get(TIME_SCALE_ENV, "1.0")
    try:
        if not 0 < float(raw) <= 100:
            raise ValueError
    except ValueError:
        raise BadInput(
            f"{TIME_SCALE_ENV}: '{raw}' is not a number above 0 (1.0 is AWS's timing)"
        ) from None
    return raw


def up(
    layout: Layout, profile: str | None = None, deadline_s: float = 30.0
) -> tuple[SandboxState, bool]:
    """Start the sandbox unless it runs; returns its state and whether it was started now.

    `profile` defaults to DEPLOYER_SANDBOX_PROFILE, else "fast". Asking explicitly for another
    profile than the running sandbox has is an error: its state would not be what was asked.
    """
    wanted = profile or profile_from_env()
    if wanted not in PROFILES:
        raise BadInput(f"sandbox profile '{wanted}': choose from {', '.join(PROFILES)}")
    overrides = os.environ.get(BEHAVIOURS_ENV, "")
    try:
        behaviours_for(wanted, overrides or None)
    except (ValueError, OSError, TypeError) as exc:
        raise BadInput(f"{BEHAVIOURS_ENV}: {exc}") from None
    running = status(layout)
    if running is not None:
        if profile is not None and running.profile != profile:
            raise BadInput(
                f"the sandbox runs with profile '{running.profile}', not '{profile}'; "
                "stop it first with `deployer sandbox down` (its state is forgotten)"
            )
        return running, False
    _clean(layout)
    layout.root.mkdir(parents=True, exist_ok=True)
    scale = _time_scale()
    command = [
        sys.executable,
        "-m",
        "deployer.sandbox.daemon",
        "--dir",
        str(layout.root),
        "--port",
        str(_free_port()),
        "--time-scale",
        scale,
        "--profile",
        wanted,
        "--behaviours",
        overrides,
    ]
    with open(layout.log_file, "ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    stop_at = time.monotonic() + deadline_s
    while time.monotonic() < stop_at:
        if process.poll() is not None:
            raise Unreachable(
                f"the sandbox exited with code {process.returncode}; "
                f"see {layout.log_file}:\n{_tail(layout.log_file)}"
            )
        state = status(layout)
        if state is not None:
            return state, True
        time.sleep(0.1)
    stop_process_group(process.pid)
    raise Unreachable(f"the sandbox did not start within {deadline_s:.0f}s; see {layout.log_file}")


def down(layout: Layout, deadline_s: float = 20.0) -> bool:
    """Stop the sandbox and every process it started; forget its state. True if it was up."""
    raw = read_json(layout.state_file)
    was_up = False
    if raw and _alive(int(raw["pid"])):
        was_up = True
        os.kill(int(raw["pid"]), signal.SIGTERM)
        stop_at = time.monotonic() + deadline_s
        while _alive(int(raw["pid"])) and time.monotonic() < stop_at:
            time.sleep(0.05)
        if _alive(int(raw["pid"])):
            stop_process_group(int(raw["pid"]), grace_s=0)
    _clean(layout)
    return was_up


def _clean(layout: Layout) -> None:
    """Kill app processes a killed daemon left behind, then remove all state but the log."""
    if layout.hosts.is_dir():
        for pid_file in layout.hosts.glob("*/app.pid"):
            with contextlib.suppress(ValueError, PermissionError):
                stop_process_group(int(pid_file.read_text().strip()), grace_s=2)
    for path in (layout.hosts, layout.images):
        shutil.rmtree(path, ignore_errors=True)
    for path in (layout.state_file, layout.fronts_file):
        path.unlink(missing_ok=True)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def front_url(layout: Layout, dns_name: str, port: int) -> str | None:
    fronts = read_json(layout.fronts_file) or {}
    url = fronts.get(f"{dns_name}:{port}")
    return str(url) if url else None


def host_of(layout: Layout, instance_id: str) -> dict[str, str] | None:
    raw = read_json(layout.host_dir(instance_id) / "host.json")
    return dict(raw) if raw else None
