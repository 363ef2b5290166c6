"""The ansible-runner edge. ansible-runner does not raise when a playbook fails: we map its
status, rc and events to our own typed errors here, and nowhere else.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.bake.watchdog import BAKE_DIR_PREFIX, end_processes_using, watchdog_for
from deployer.errors import BadInput, BakeFailed

SANITIZE = Path(__file__).with_name("sanitize.yml")


@dataclass(frozen=True)
class BuilderAccess:
    """How Ansible reaches a builder: SSH on EC2, a local root directory in the sandbox."""

    host: str
    connection: str  # "ssh" or "local"
    root: str = ""  # where the image's filesystem is: "" on EC2, the host directory in the sandbox
    user: str = ""
    port: int = 22
    private_key_file: str = ""
    known_hosts: str = ""  # a file holding only the builder's pinned host key
    sandbox: bool = False
    python: str = "/usr/bin/python3"  # explicit: interpreter discovery guesses wrong on some hosts
    name: str = "builder"  # the instance id: failures name it

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


def _environment(workdir: Path, access: BuilderAccess) -> dict[str, str]:
    # ansible-runner spawns ansible-playbook from PATH; without our venv's bin it fails with rc 127.
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    # The builder's host key is pinned: checking on, and a known_hosts file holding only it.
    # Never a multiplexed connection that outlives the run.
    known_hosts = access.known_hosts or str(workdir / "known_hosts")
    return {
        "PATH": path,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
        # Where a module run unpacks its payload (AnsiballZ's temporary directory) when it runs
        # on this machine: inside the bake's private directory, so a run killed mid-module
        # leaves nothing in /tmp (the watchdog removes the directory).
        "TMPDIR": str(workdir / "tmp"),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": f"-o ControlMaster=no -o UserKnownHostsFile={known_hosts} "
        "-o StrictHostKeyChecking=yes -o GlobalKnownHostsFile=/dev/null",
    }


def _site(workdir: Path, playbook: Path, sanitize: bool) -> Path:
    """The playbook to run: the user's, then (before imaging) deployer's sanitize play."""
    if not sanitize:
        return playbook.resolve()
    site = workdir / "site.yml"
    site.write_text(
        "---\n"
        f"- import_playbook: {json.dumps(str(playbook.resolve()))}\n"
        f"- import_playbook: {json.dumps(str(SANITIZE))}\n"
    )
    return site


def run_playbook(
    playbook: Path,
    access: BuilderAccess,
    extravars: Mapping[str, Any],
    report: Callable[[str], None] = lambda _line: None,
    sanitize: bool = False,
) -> dict[str, Any]:
    """Run `playbook` on the builder; return ansible's stats or raise BakeFailed naming the
    task, the builder and Ansible's message. With `sanitize`, deployer's sanitize play runs
    after it: the image must not keep the bake's authorized key, host keys or cloud-init state.
    """
    import ansible_runner  # imported here: it takes a while, and only a bake needs it

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
            failures.append(
                f"task '{data.get('task', '?')}' on {access.name}: {str(message).strip()[:500]}"
            )
        return True

    workdir = Path(tempfile.mkdtemp(prefix=BAKE_DIR_PREFIX))
    watchdog = watchdog_for(workdir)
    try:
        # The private data dir holds the extravars (a presigned URL among them): it is removed
        # when the bake ends (by the watchdog if we are killed), and the task that uses the
        # URL is no_log.
        (workdir / "tmp").mkdir()
        result = ansible_runner.run(
            private_data_dir=str(workdir),
            playbook=str(_site(workdir, playbook, sanitize)),
            inventory=access.inventory(),
            extravars={
                **extravars,
                "deployer_root": access.root,
                "deployer_sandbox": access.sandbox,
                "deployer_ssh_user": access.user or "ec2-user",
            },
            envvars=_environment(workdir, access),
            event_handler=on_event,
            quiet=True,
            rotate_artifacts=1,
        )
        stats = dict(result.stats or {})
    finally:
        # Ctrl-C, SIGTERM or an error: no ansible-playbook of this bake outlives it.
        end_processes_using(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        watchdog.terminate()
    if result.status == "successful" and result.rc == 0:
        return stats
    if result.rc == 127:
        raise BakeFailed("bake failed: ansible-playbook was not found on PATH")
    detail = "; ".join(failures) or f"status {result.status}, rc {result.rc}"
    raise BakeFailed(f"bake failed on {access.name} ({playbook.name}): {detail}")


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
