"""Verify hooks: the team's own checks (`verify:` in deployer.yaml), run as gates.

Each command runs with /bin/sh on the machine running deployer, from the config file's
folder, in a process group of its own, with the URLs to check in its environment:

    DEPLOYER_URL               production (every step's users)
    DEPLOYER_TEST_URL          the test listener (green alone, no users)
    DEPLOYER_VERSION           green's version
    DEPLOYER_PREVIOUS_VERSION  blue's version ("" on a first release)
    DEPLOYER_STEP              "before traffic", or the traffic step's name

Its output streams line by line to the caller. A non-zero exit or the timeout is a gate
failure naming the command, its exit status and its last lines. The whole group is ended
on a timeout, on Ctrl-C or SIGTERM, and by a watchdog if deployer itself is killed, so a
hook never outlives the run.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from deployer.bake.watchdog import end_group, watchdog_for_group
from deployer.core.gates import GateKind, Observation

LAST_LINES = 20


@dataclass(frozen=True)
class HookResult:
    command: str
    exit_status: int | None  # None: it ran out of time
    last_lines: tuple[str, ...]
    seconds: float

    @property
    def passed(self) -> bool:
        return self.exit_status == 0

    def observation(self, timeout_s: float) -> Observation:
        if self.exit_status is None:
            what = f"timed out after {timeout_s:g}s"
        else:
            what = f"exited {self.exit_status} after {self.seconds:.1f}s"
        tail = " | ".join(self.last_lines[-5:])
        detail = what + (f"; last lines: {tail}" if tail and not self.passed else "")
        return Observation(
            GateKind.VERIFY,
            self.command,
            self.passed,
            detail,
            verdict="pass" if self.passed else "fail",
            evidence={"exit_status": self.exit_status, "last_lines": list(self.last_lines)},
        )


def hook_env(url: str, test_url: str, version: str, previous: str, step: str) -> dict[str, str]:
    return {
        "DEPLOYER_URL": url,
        "DEPLOYER_TEST_URL": test_url,
        "DEPLOYER_VERSION": version,
        "DEPLOYER_PREVIOUS_VERSION": previous,
        "DEPLOYER_STEP": step,
    }


def run_hook(
    command: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    on_line: Callable[[str], None],
) -> HookResult:
    """Run one hook to its end (or its timeout); Ctrl-C ends it and is raised again."""
    started = time.monotonic()
    # bandit B603: the command is the operator's own, from their deployer.yaml
    process = subprocess.Popen(  # nosec B603
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    watchdog = watchdog_for_group(process.pid)
    lines: deque[str] = deque(maxlen=LAST_LINES)

    def read() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            on_line(line)

    reader = threading.Thread(target=read, name="verify-output", daemon=True)
    reader.start()
    try:
        try:
            status: int | None = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            status = None
    except BaseException:  # Ctrl-C, SIGTERM (raised as KeyboardInterrupt): end the group
        end_group(process.pid)
        process.wait()
        raise
    finally:
        end_group(process.pid, grace_s=1.0)  # what the command left behind in its group
        watchdog.kill()
        watchdog.wait()
        if process.poll() is None:
            process.wait()
        reader.join(2)
    return HookResult(command, status, tuple(lines), time.monotonic() - started)
