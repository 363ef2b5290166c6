"""`deployer exec`: a shell command on every instance of a fleet, through SSM Run Command
(AWS-RunShellScript) targeted by the fleet's tags: its app, its environment and its Auto
Scaling group. No SSH, and every call is in CloudTrail.

It takes no lock (an exec may run during a release) and says which fleet it targets. It is
journalled before it is sent and when it ends (who, the command, the fleet, each instance's
result), and `deployer history` lists it. Each instance's whole output goes to the
app/environment's log group; what Run Command answers inline (2,500 characters) is printed,
and where it was cut the stream holding all of it is named. Ctrl-C cancels the command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from deployer.aws.actions import EXEC_ACTIONS
from deployer.aws.poller import Poll
from deployer.aws.ssm import CommandState, RunCommand
from deployer.core.execs import (
    TERMINAL,
    ExecRecord,
    InstanceResult,
    checked_limits,
    count_of,
    describe,
    failed,
    results_for,
    summary,
)
from deployer.core.model import Outcome
from deployer.core.names import new_run_id
from deployer.errors import BadInput, ExecFailed, NeedsHuman, PollTimeout
from deployer.infra.permissions import check_permissions
from deployer.ops.fleet_select import choose
from deployer.release.engine import Engine

DELIVERY_MARGIN_S = 120.0  # beyond the commands' own timeouts, for delivery and reporting


@dataclass(frozen=True)
class ExecResult:
    record: ExecRecord
    results: list[InstanceResult]
    log_group: str


def run_exec(
    engine: Engine,
    argv: tuple[str, ...],
    selector: str,
    max_concurrency: str,
    max_errors: str,
    timeout_s: int,
) -> ExecResult:
    """Run `argv` (joined by spaces, for the instance's shell, as ssh does) on the fleet."""
    if not argv or not " ".join(argv).strip():
        raise BadInput("exec: give the command to run after --, e.g. deployer exec -- uname -a")
    checked_limits(max_concurrency, max_errors, timeout_s)
    engine.check_reachable()
    choice = choose(engine, selector)
    fleet = choice.fleet
    group = engine.asg.describe(fleet.asg_name) if fleet and fleet.asg_name else None
    if fleet is None or group is None or not group.instance_ids:
        raise BadInput(
            f"exec: no instance of {choice.version} is running in {engine.names.scope}"
            + ("" if fleet is None else f" (fleet {fleet.stack_name} has none in service)")
        )
    expected = group.instance_ids
    check_permissions(engine, EXEC_ACTIONS)
    engine.report(
        f"exec: on {choice.version} ({choice.role}, fleet {fleet.stack_name}), "
        f"{len(expected)} instance(s): {', '.join(expected)}; no lock is taken"
    )
    script = " ".join(argv)
    record = ExecRecord(
        exec_id=new_run_id(engine.now()),
        started_at=engine.stamp(),
        actor=engine.actor,
        command=tuple(argv),
        version=choice.version,
        fleet_stack=fleet.stack_name,
        role=choice.role,
    )
    engine.journal.write_exec(record)
    run = RunCommand(engine.runtime.aws)
    command_id = run.send(
        script,
        {**engine.tags(), "aws:autoscaling:groupName": group.name},
        max_concurrency,
        max_errors,
        timeout_s,
        engine.names.log_group,
        f"deployer exec by {engine.actor.user}: {script}",
        expected=len(expected),
    )
    record = replace(record, command_id=command_id)
    engine.journal.write_exec(record)
    batches = math.ceil(len(expected) / count_of(max_concurrency, len(expected), 1))
    try:
        state = wait(engine, run, command_id, timeout_s * batches + DELIVERY_MARGIN_S)
    except KeyboardInterrupt:
        run.cancel(command_id)
        engine.journal.write_exec(
            record.finished(engine.stamp(), [], reason="interrupted: the command was cancelled")
        )
        raise
    except PollTimeout as exc:
        engine.journal.write_exec(replace(record, reason=f"not finished: {exc}"))
        raise NeedsHuman(
            f"exec: command {command_id} has not finished ({exc.last_status}); Run Command "
            "goes on with it: `aws ssm list-command-invocations --details --command-id "
            f"{command_id}` shows where it is"
        ) from None
    results = results_for(expected, run.results(command_id))
    reason = summary(results) if state.status != "Cancelled" else "cancelled"
    record = record.finished(engine.stamp(), results, reason=reason)
    engine.journal.write_exec(record)
    return ExecResult(record, results, engine.names.log_group)


def wait(engine: Engine, run: RunCommand, command_id: str, deadline_s: float) -> CommandState:
    def check() -> Poll[CommandState]:
        state = run.state(command_id)
        done = state.status in TERMINAL
        return Poll(done, f"{state.details} ({state.completed}/{state.targets} done)", state)

    return engine.poller.until(f"command {command_id}", check, deadline_s)


def raise_if_failed(result: ExecResult) -> None:
    bad = failed(result.results)
    if not bad and result.record.outcome is Outcome.SUCCEEDED:
        return
    error = ExecFailed(
        f"exec failed on {len(bad)} of {len(result.results)} instance(s) of "
        f"{result.record.version}: " + ", ".join(f"{r.instance_id} ({describe(r)})" for r in bad)
    )
    error.details = {"exec": exec_json(result)}
    raise error


def exec_json(result: ExecResult) -> dict[str, object]:
    record = result.record
    return {
        "exec_id": record.exec_id,
        "command_id": record.command_id,
        "command": list(record.command),
        "version": record.version,
        "fleet": record.role,
        "fleet_stack": record.fleet_stack,
        "outcome": record.outcome.value,
        "log_group": result.log_group,
        "results": [
            {
                "instance": r.instance_id,
                "status": r.status,
                "exit_code": r.exit_code,
                "output": r.output,
                "truncated": r.truncated,
                "stdout_stream": r.stdout_stream,
                "stderr_stream": r.stderr_stream,
            }
            for r in result.results
        ],
    }


def render(result: ExecResult) -> str:
    """Each instance's status and output; where Run Command cut it, the stream with all."""
    lines: list[str] = []
    for r in result.results:
        lines.append(f"== {r.instance_id}: {describe(r) if not r.ok else 'ok (exit 0)'}")
        if r.output:
            lines.append(r.output.rstrip("\n"))
        if r.truncated:
            lines.append(
                f"(output cut by Run Command; all of it is in the log group {result.log_group}, "
                f"streams {r.stdout_stream} and {r.stderr_stream})"
            )
    lines.append(f"exec {result.record.exec_id}: {result.record.reason}")
    return "\n".join(lines)


def history(engine: Engine, limit: int) -> list[dict[str, Any]]:
    """The journalled execs, newest first."""
    return [
        {
            "exec_id": r.exec_id,
            "kind": "exec",
            "command": list(r.command),
            "version": r.version,
            "fleet": r.role,
            "fleet_stack": r.fleet_stack,
            "command_id": r.command_id,
            "outcome": r.outcome.value,
            "started_at": r.started_at,
            "finished_at": r.finished_at,
            "actor": str(r.actor),
            "instances": dict(r.instances),
            "reason": r.reason,
        }
        for r in engine.journal.execs(limit)
    ]
