"""Run Command, executed on the sandbox's hosts as the SSM agent on each instance would (a
named behaviour, on in every profile). moto records a SendCommand and answers "Success" at once,
without running anything, and lacks ListCommandInvocations and CancelCommand.

For the AWS-RunShellScript document (other documents are left to moto):
- the targets are the instances moto resolves (InstanceIds, or Targets by tag) that have a
  booted host: managed nodes whose agent answers;
- each invocation is Pending, then (after the agent's delivery time, scaled) InProgress while
  `commands` run as one /bin/sh script in the host's root, then Success (exit 0), Failed or
  TimedOut (`executionTimeout`, in seconds, default 3600); at most MaxConcurrency run at once,
  and once more than MaxErrors have failed or timed out no more are sent (the rest Cancelled);
- the command's Status follows: Pending, InProgress, then Success, Failed or Cancelled;
- output as Run Command reports it: GetCommandInvocation's StandardOutputContent holds the
  first 24,000 characters (stderr 8,000), ListCommandInvocations' plugin Output the first
  2,500; with CloudWatchOutputConfig the whole output goes to the log group (default
  /aws/ssm/AWS-RunShellScript), streams <command id>/<instance id>/aws-runShellScript/stdout
  and .../stderr; CancelCommand stops what runs (its process group) and what waits.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.ssm.models import Command, SimpleSystemManagerBackend
from moto.ssm.responses import SimpleSystemManagerResponse

from deployer.core.execs import count_of
from deployer.sandbox import agent, latency
from deployer.sandbox.world import WORLD

log = logging.getLogger("deployer.sandbox.run_command")
DOCUMENT = "AWS-RunShellScript"
PLUGIN = "aws:runShellScript"
STREAM_PLUGIN = "aws-runShellScript"
DEFAULT_GROUP = "/aws/ssm/AWS-RunShellScript"
STDOUT_MAX, STDERR_MAX, OUTPUT_MAX = 24_000, 8_000, 2_500
DEFAULT_EXECUTION_TIMEOUT_S = 3600
FINAL = frozenset({"Success", "Failed", "TimedOut", "Cancelled"})


@dataclass
class Invocation:
    instance_id: str
    root: Path
    status: str = "Pending"
    details: str = "Pending"
    code: int = -1
    stdout: str = ""
    stderr: str = ""
    started: datetime | None = None
    ended: datetime | None = None


@dataclass
class Run:
    command: Command
    invocations: dict[str, Invocation]
    script: str
    timeout_s: float
    log_group: str  # "" without CloudWatch output
    cancelled: threading.Event = field(default_factory=threading.Event)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)


_ORIGINAL_SEND = SimpleSystemManagerBackend.send_command
_ORIGINAL_RESPONSE = SimpleSystemManagerResponse.send_command
_REQUEST = threading.local()  # the CloudWatchOutputConfig of the SendCommand being served
_RUNS: dict[str, Run] = {}
_LOCK = threading.Lock()
_BOOTED: list[Callable[[], dict[str, Path]]] = []


def _now() -> datetime:
    return datetime.now(UTC)


def send_command_response(self: SimpleSystemManagerResponse) -> Any:
    _REQUEST.cloudwatch = self._get_param("CloudWatchOutputConfig") or {}
    try:
        return _ORIGINAL_RESPONSE(self)
    finally:
        _REQUEST.cloudwatch = {}


def send_command(self: SimpleSystemManagerBackend, *args: Any, **kwargs: Any) -> Command:
    command = _ORIGINAL_SEND(self, *args, **kwargs)
    if command.document_name != DOCUMENT or not _BOOTED:
        return command
    booted = _BOOTED[0]()
    targets = sorted(i for i in command.instance_ids if i in booted)
    cloudwatch = getattr(_REQUEST, "cloudwatch", {}) or {}
    enabled = str(cloudwatch.get("CloudWatchOutputEnabled", "")).lower() == "true"
    parameters = command.parameters or {}
    timeout = (parameters.get("executionTimeout") or [str(DEFAULT_EXECUTION_TIMEOUT_S)])[0]
    run = Run(
        command=command,
        invocations={i: Invocation(i, booted[i]) for i in targets},
        script="\n".join(parameters.get("commands") or []),
        timeout_s=float(timeout),
        log_group=(cloudwatch.get("CloudWatchLogGroupName") or DEFAULT_GROUP) if enabled else "",
    )
    command.instance_ids = targets
    command.target_count = len(targets)
    command.completed_count = command.error_count = 0
    command.status = command.status_details = "Pending" if targets else "Success"
    command.invocations = [_moto_invocation(run, run.invocations[i]) for i in targets]
    with _LOCK:
        _RUNS[command.command_id] = run
    if targets:
        threading.Thread(target=_dispatch, args=(run,), daemon=True, name="run-command").start()
    return command


def _dispatch(run: Run) -> None:
    """Send the command to its targets, MaxConcurrency at a time, until more than MaxErrors
    failed; then the command's own status.
    """
    command = run.command
    total = len(run.invocations)
    concurrency = count_of(command.max_concurrency or "50", total, 1)
    max_errors = count_of(command.max_errors or "0", total, 0)
    waiting = list(run.invocations.values())
    running: dict[str, threading.Thread] = {}
    errors = 0
    while waiting or running:
        for instance_id in [i for i, t in running.items() if not t.is_alive()]:
            del running[instance_id]
            if run.invocations[instance_id].status in ("Failed", "TimedOut"):
                errors += 1
        stop = run.cancelled.is_set() or errors > max_errors
        while waiting and not stop and len(running) < concurrency:
            invocation = waiting.pop(0)
            thread = threading.Thread(target=_execute, args=(run, invocation), daemon=True)
            running[invocation.instance_id] = thread
            thread.start()
            _update(run, status="InProgress")
        if stop:
            for invocation in waiting:  # never sent
                _set(run, invocation, status="Cancelled", details="Cancelled")
            waiting = []
        time.sleep(0.02)
    results = [i.status for i in run.invocations.values()]
    if run.cancelled.is_set():
        final, details = "Cancelled", "Cancelled"
    elif all(s == "Success" for s in results):
        final, details = "Success", "Success"
    elif errors > max_errors:
        final, details = "Failed", "Failed"
    else:
        final, details = "Failed", "Incomplete"
    _update(run, status=final, details=details)


def _execute(run: Run, invocation: Invocation) -> None:
    delay = WORLD.scaled(latency.RUN_COMMAND_DELIVERY_S) if WORLD.behaviours.latency else 0.0
    if run.cancelled.wait(delay):
        _set(run, invocation, status="Cancelled", details="Cancelled")
        return
    _set(run, invocation, status="InProgress", details="InProgress", started=_now())
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(invocation.root),
        "LANG": "C.UTF-8",
        "PYTHON": sys.executable,
    }
    try:
        process = subprocess.Popen(  # noqa: S603 - the operator's own command, on its host
            ["/bin/sh", "-c", run.script],
            cwd=invocation.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        _set(run, invocation, status="Failed", details="Failed", stderr=str(exc), ended=_now())
        return
    with _LOCK:
        run.processes[invocation.instance_id] = process
    status = "Success"
    try:
        out, err = process.communicate(timeout=run.timeout_s)
    except subprocess.TimeoutExpired:
        _kill(process)
        out, err = process.communicate()
        status = "TimedOut"
    finally:
        with _LOCK:
            run.processes.pop(invocation.instance_id, None)
    code = process.returncode
    if run.cancelled.is_set() and status != "TimedOut" and code != 0:
        status = "Cancelled"
    elif status == "Success" and code != 0:
        status = "Failed"
    stdout = out.decode("utf-8", errors="replace")
    stderr = err.decode("utf-8", errors="replace")
    if run.log_group:
        base = f"{run.command.command_id}/{invocation.instance_id}/{STREAM_PLUGIN}"
        for name, text in (("stdout", stdout), ("stderr", stderr)):
            lines = [line for line in text.splitlines() if line]
            if lines:
                agent.put_lines(run.log_group, f"{base}/{name}", lines)
    details = {"TimedOut": "ExecutionTimedOut"}.get(status, status)
    _set(
        run,
        invocation,
        status=status,
        details=details,
        code=code if status != "TimedOut" else -1,
        stdout=stdout,
        stderr=stderr,
        ended=_now(),
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _set(run: Run, invocation: Invocation, **changes: Any) -> None:
    with WORLD.lock:
        for key, value in changes.items():
            setattr(invocation, key, value)
        command = run.command
        command.invocations = [_moto_invocation(run, i) for i in run.invocations.values()]
        done = [i for i in run.invocations.values() if i.status in FINAL]
        command.completed_count = len(done)
        command.error_count = sum(1 for i in done if i.status in ("Failed", "TimedOut"))


def _update(run: Run, status: str, details: str = "") -> None:
    with WORLD.lock:
        if run.command.status in FINAL:
            return
        run.command.status = status
        run.command.status_details = details or status


def _moto_invocation(run: Run, invocation: Invocation) -> dict[str, Any]:
    """GetCommandInvocation's answer (moto serves it from this dict)."""
    command = run.command
    finished = invocation.status in FINAL
    return {
        "CommandId": command.command_id,
        "InstanceId": invocation.instance_id,
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": "$DEFAULT",
        "PluginName": PLUGIN,
        "ResponseCode": invocation.code,
        "ExecutionStartDateTime": invocation.started.isoformat() if invocation.started else "",
        "ExecutionElapsedTime": _elapsed(invocation),
        "ExecutionEndDateTime": invocation.ended.isoformat() if invocation.ended else "",
        "Status": invocation.status,
        "StatusDetails": invocation.details,
        "StandardOutputContent": invocation.stdout[:STDOUT_MAX] if finished else "",
        "StandardOutputUrl": "",
        "StandardErrorContent": invocation.stderr[:STDERR_MAX] if finished else "",
        "StandardErrorUrl": "",
        "CloudWatchOutputConfig": _cloudwatch(run),
    }


def _elapsed(invocation: Invocation) -> str:
    if invocation.started is None:
        return ""
    seconds = ((invocation.ended or _now()) - invocation.started).total_seconds()
    return f"PT{seconds:.3f}S"


def _cloudwatch(run: Run) -> dict[str, Any]:
    if not run.log_group:
        return {"CloudWatchOutputEnabled": False}
    return {"CloudWatchLogGroupName": run.log_group, "CloudWatchOutputEnabled": True}


def _listed(run: Run, invocation: Invocation, details: bool) -> dict[str, Any]:
    """ListCommandInvocations' CommandInvocation (with its plugin when Details is true)."""
    command = run.command
    entry: dict[str, Any] = {
        "CommandId": command.command_id,
        "InstanceId": invocation.instance_id,
        "InstanceName": "",
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": "$DEFAULT",
        "RequestedDateTime": command.requested_date_time,
        "Status": invocation.status,
        "StatusDetails": invocation.details,
        "TraceOutput": "",
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "CommandPlugins": [],
        "ServiceRole": command.service_role_arn,
        "CloudWatchOutputConfig": _cloudwatch(run),
    }
    if details:
        plugin: dict[str, Any] = {
            "Name": PLUGIN,
            "Status": invocation.status,
            "StatusDetails": invocation.details,
            "ResponseCode": invocation.code,
            "Output": plugin_output(invocation)[:OUTPUT_MAX] if invocation.status in FINAL else "",
            "StandardOutputUrl": "",
            "StandardErrorUrl": "",
        }
        if invocation.started:
            plugin["ResponseStartDateTime"] = invocation.started
        if invocation.ended:
            plugin["ResponseFinishDateTime"] = invocation.ended
        entry["CommandPlugins"] = [plugin]
    return entry


def plugin_output(invocation: Invocation) -> str:
    """A plugin's Output as Run Command writes it: stdout, then stderr after a marker."""
    if not invocation.stderr:
        return invocation.stdout
    return f"{invocation.stdout}\n----------ERROR-------\n{invocation.stderr}"


def list_command_invocations(self: SimpleSystemManagerResponse) -> Any:
    command_id = self._get_param("CommandId")
    instance_id = self._get_param("InstanceId")
    details = bool(self._get_param("Details", False))
    page_size = int(self._get_param("MaxResults") or 50)
    start = int(self._get_param("NextToken") or 0)
    with _LOCK:
        runs = [_RUNS[command_id]] if command_id in _RUNS else []
        if not command_id:
            runs = list(_RUNS.values())
    with WORLD.lock:
        listed = [
            _listed(run, invocation, details)
            for run in runs
            for invocation in run.invocations.values()
            if not instance_id or invocation.instance_id == instance_id
        ]
    answer: dict[str, Any] = {"CommandInvocations": listed[start : start + page_size]}
    if start + page_size < len(listed):
        answer["NextToken"] = str(start + page_size)
    return ActionResult(answer)


def cancel_command(self: SimpleSystemManagerResponse) -> Any:
    command_id = self._get_param("CommandId")
    self.ssm_backend.get_command_by_id(command_id)  # InvalidCommandId, as moto answers it
    with _LOCK:
        run = _RUNS.get(command_id)
        processes = list(run.processes.values()) if run else []
    if run is not None:
        run.cancelled.set()
        for process in processes:
            _kill(process)
    return EmptyResult()


def close() -> None:
    """Stop every command still running (the sandbox is going down)."""
    with _LOCK:
        runs = list(_RUNS.values())
    for run in runs:
        run.cancelled.set()
        with _LOCK:
            processes = list(run.processes.values())
        for process in processes:
            _kill(process)


def check_internals() -> list[str]:
    """What moves in moto that this behaviour relies on (empty when nothing did)."""
    names = ("instance_ids", "invocations", "status", "parameters", "target_count")
    moved = [f"Command.{n}" for n in names if n not in Command.__init__.__code__.co_names]
    if not hasattr(SimpleSystemManagerBackend, "get_command_by_id"):
        moved.append("SimpleSystemManagerBackend.get_command_by_id")
    return moved


def apply(booted: Callable[[], dict[str, Path]]) -> None:
    _BOOTED[:] = [booted]
    SimpleSystemManagerBackend.send_command = send_command  # type: ignore[method-assign]
    SimpleSystemManagerResponse.send_command = send_command_response  # type: ignore[method-assign]
    SimpleSystemManagerResponse.list_command_invocations = list_command_invocations  # type: ignore[attr-defined]
    SimpleSystemManagerResponse.cancel_command = cancel_command  # type: ignore[attr-defined]
