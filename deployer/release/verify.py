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

A hook gets deployer's environment without its credentials: no AWS keys or session token,
no web identity token, no container or GitHub OIDC token endpoint (`verify.aws_credentials:
true` passes the AWS ones, for a hook that reads AWS). Its lines are recorded (events.jsonl,
which CI uploads as an artifact, where GitHub masks nothing) only after every credential
value of the environment, and anything shaped like an AWS access key id, is replaced by ***.
"""

from __future__ import annotations

import os
import re
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
# What a hook does not get: the run's credentials, and what mints more of them.
AWS_CREDENTIALS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)
NEVER_PASSED = ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL")
# Environment names whose values are secrets wherever they appear in a hook's output.
SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|API_KEY)", re.I)
ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
MIN_SECRET_LENGTH = 8  # shorter values would blank ordinary words


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


def hook_environment(
    base: Mapping[str, str], env: Mapping[str, str], aws_credentials: bool = False
) -> dict[str, str]:
    """What a hook runs with: `base` (deployer's environment) less the credentials, and
    `env` (hook_env)."""
    dropped = set(NEVER_PASSED) | (set() if aws_credentials else set(AWS_CREDENTIALS))
    return {**{k: v for k, v in base.items() if k not in dropped}, **env}


def secret_values(environment: Mapping[str, str]) -> list[str]:
    """The values to keep out of what is recorded, longest first."""
    found = {
        value
        for name, value in environment.items()
        if len(value) >= MIN_SECRET_LENGTH and (name in AWS_CREDENTIALS or SECRET_NAME.search(name))
    }
    return sorted(found, key=len, reverse=True)


def scrubbed(line: str, secrets: list[str]) -> str:
    for value in secrets:
        line = line.replace(value, "***")
    return ACCESS_KEY_ID.sub("***", line)


def run_hook(
    command: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    on_line: Callable[[str], None],
    aws_credentials: bool = False,
) -> HookResult:
    """Run one hook to its end (or its timeout); Ctrl-C ends it and is raised again. Its
    lines reach `on_line` and the result scrubbed of secrets.
    """
    started = time.monotonic()
    secrets = secret_values(os.environ)
    # bandit B603: the command is the operator's own, from their deployer.yaml
    process = subprocess.Popen(  # nosec B603
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=hook_environment(os.environ, env, aws_credentials),
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
            line = scrubbed(raw.decode(errors="replace").rstrip("\n"), secrets)
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
