"""The ansible-runner edge. ansible-runner does not raise when a playbook fails: we map its
status, rc and events to our own typed errors here, and nowhere else.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.errors import BadInput, ReleaseFailed


class BakeFailed(ReleaseFailed):
    pass


@dataclass(frozen=True)
class BuilderAccess:
    """How Ansible reaches a builder: SSH on EC2, a local root directory in the sandbox."""

    host: str
    connection: str  # "ssh" or "local"
    root: str = ""  # where the image's filesystem is: "" on EC2, the host directory in the sandbox
    user: str = ""
    port: int = 22
    private_key_file: str = ""
    sandbox: bool = False
    python: str = "/usr/bin/python3"  # explicit: interpreter discovery guesses wrong on some hosts

    def inventory(self) -> str:
        values = {"ansible_connection": self.connection}
        if self.connection == "local":
            values["ansible_python_interpreter"] = sys.executable
        else:
            values.update(
                ansible_host=self.host,
                ansible_port=str(self.port),
                ansible_user=self.user,
                ansible_python_interpreter=self.python,
            )
            if self.private_key_file:
                values["ansible_ssh_private_key_file"] = self.private_key_file
        line = " ".join(f"{k}={shlex.quote(v)}" for k, v in values.items())
        return f"[builder]\nbuilder {line}\n"


def failure_message(result: dict[str, Any]) -> str:
    """What a failed task said; for a loop, what its failed items said."""
    items = [
        r
        for r in result.get("results", [])
        if isinstance(r, dict) and (r.get("failed") or r.get("unreachable"))
    ]
    if items:
        return "; ".join(failure_message(item) for item in items)
    message = str(result.get("msg") or result.get("stderr") or "failed")
    detail = str(result.get("module_stderr", "")).strip().splitlines()
    return f"{message} ({detail[0]})" if detail else message


def _environment(workdir: Path) -> dict[str, str]:
    # ansible-runner spawns ansible-playbook from PATH; without our venv's bin it fails with rc 127.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    known_hosts = workdir / "known_hosts"
    return {
        "PATH": path,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
        # A builder is new each time: accept its key once, in a file private to this bake,
        # and never reuse a multiplexed connection after the run.
        "ANSIBLE_SSH_ARGS": f"-o ControlMaster=no -o UserKnownHostsFile={known_hosts} "
        "-o StrictHostKeyChecking=accept-new",
    }


def run_playbook(
    playbook: Path,
    access: BuilderAccess,
    extravars: Mapping[str, Any],
    report: Callable[[str], None] = lambda _line: None,
) -> dict[str, Any]:
    """Run `playbook` on the builder; return ansible's stats or raise BakeFailed."""
    failures: list[str] = []

    def on_event(event: dict[str, Any]) -> bool:
        data = event.get("event_data", {})
        kind = event.get("event", "")
        if kind == "playbook_on_task_start":
            report(f"bake: {data.get('task', '').strip()}")
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get(
            "ignore_errors"
        ):
            message = failure_message(data.get("res", {}))
            failures.append(f"task '{data.get('task', '?')}': {str(message).strip()[:500]}")
        return True

    import ansible_runner  # imported here: it takes a while, and only a bake needs it

    with tempfile.TemporaryDirectory(prefix="deployer-bake-") as workdir:
        # The private data dir holds the extravars (a presigned URL among them): it is removed
        # when the bake ends, and the task that uses the URL is no_log.
        (Path(workdir) / "tmp").mkdir()
        result = ansible_runner.run(
            private_data_dir=workdir,
            playbook=str(playbook.resolve()),
            inventory=access.inventory(),
            extravars={
                **extravars,
                "deployer_root": access.root,
                "deployer_sandbox": access.sandbox,
            },
            envvars=_environment(Path(workdir)),
            event_handler=on_event,
            quiet=True,
            rotate_artifacts=1,
        )
        stats = dict(result.stats or {})
    if result.status == "successful" and result.rc == 0:
        return stats
    if result.rc == 127:
        raise BakeFailed("bake failed: ansible-playbook was not found on PATH")
    detail = "; ".join(failures) or f"status {result.status}, rc {result.rc}"
    raise BakeFailed(f"bake failed on the builder ({playbook.name}): {detail}")


def syntax_check(playbook: Path) -> None:
    """`ansible-playbook --syntax-check`: a broken playbook is bad input, before any change."""
    if not playbook.is_file():
        raise BadInput(f"bake.playbook: {playbook} does not exist")
    binary = Path(sys.executable).parent / "ansible-playbook"
    command = [
        str(binary) if binary.exists() else "ansible-playbook",
        "--syntax-check",
        "-i",
        "builder,",
        str(playbook),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        check=False,
    )
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        shown = " ".join(line.strip() for line in reason[:6])
        raise BadInput(f"bake.playbook: {playbook}: syntax check failed: {shown}")
