"""The server-side runner (executor: stepfunctions): the release's traffic steps, holds,
gates, watch and restore run as one Step Functions execution, named after the release id, of
the state machine generated from the release's table (core.state_machine).

This process does everything up to the gate on the test listener, as the local runner does;
then it journals the execution's ARN, hands the lock to the execution (which releases it as
it ends), and starts it. From then on it only reads: it follows the execution's history into
the same events and exit codes (`--detach` returns at once; `deployer follow` attaches
later). Killing it changes nothing in AWS. Once the execution ended, a follower tidies what
the state machine may not touch (fleets retired or put aside) when no other release runs.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployer.aws.dynamodb import LOCK_KEY, RECORD_PREFIX, TABLE, record_body
from deployer.aws.stepfunctions import Execution, StepFunctions, execution_arn
from deployer.core.decide import fleets_to_retire
from deployer.core.gate_inputs import looks_per_step, rule_policy
from deployer.core.metrics import BASELINE_S, PERIOD_S, alarm_wait_s
from deployer.core.model import Outcome, Phase, ReleaseRecord
from deployer.core.state_machine import HISTORY_LIMIT, Row, definition, worst_case_events
from deployer.core.steps import PlannedStep
from deployer.errors import BadInput, GateFailed, NeedsHuman, ReleaseFailed
from deployer.infra.stacks import Infra, ensure_stack
from deployer.release.engine import Engine
from deployer.release.gate_rule import jsonata_file, rule_text
from deployer.release.gating import Gated, evidence_s, metric_policy
from deployer.release.locking import SERVER_SIDE
from deployer.release.steps import Run, reset_test_listener, restored_weights

SERVER_PHASES = frozenset({Phase.STEP, Phase.WATCH, Phase.RETIRE})
FOLLOW_EVERY_S = 1.0
TEMPLATE = "runner.yaml"
PLACEHOLDER = '"__DEFINITION__"'


def runs_server_side(engine: Engine, record: ReleaseRecord) -> bool:
    """With executor: stepfunctions, every release with a previous fleet: a first release
    has no users to protect and no listener rule to hand over, and runs here.
    """
    return engine.spec.executor == "stepfunctions" and bool(record.previous_fleet)


def rows_of(table: Sequence[PlannedStep]) -> list[Row]:
    rows = []
    for step in table:
        if step.phase is Phase.STEP and step.traffic is not None:
            t = step.traffic
            rows.append(Row(step.name, "step", step.index, t.green_weight, t.blue_weight))
        elif step.phase is Phase.WATCH:
            rows.append(Row(step.name, "watch", -1, 100, 0))
    return rows


def hold_seconds(table: Sequence[PlannedStep]) -> list[float]:
    return [
        step.traffic.hold_seconds if step.traffic is not None else step.hold_seconds
        for step in table
        if step.phase in (Phase.STEP, Phase.WATCH)
    ]


def machine_name(engine: Engine) -> str:
    return engine.names.runner_stack


def ensure_runner(engine: Engine, infra: Infra, table: Sequence[PlannedStep], digest: str) -> str:
    """The runner stack, its definition generated from `table`: made or updated; its ARN."""
    body = runner_template(engine.templates_dir, table, digest)
    stack = ensure_stack(
        engine.cfn,
        engine.names.runner_stack,
        body,
        {
            "App": engine.names.app,
            "StateMachineName": machine_name(engine),
            "ListenerArn": infra.listener_arn,
            "JournalScope": engine.names.scope,
            "JournalTable": TABLE,
            "PermissionsBoundaryArn": engine.spec.cloudformation.runner_boundary_arn,
        },
        {**engine.names.tags, "deployer:role": "runner"},
        engine.report,
        engine.replace_failed,
    )
    return stack.outputs["StateMachineArn"]


def runner_template(templates_dir: Path, table: Sequence[PlannedStep], digest: str) -> str:
    """cloudformation/runner.yaml with the definition generated from `table` in it."""
    body = (templates_dir / TEMPLATE).read_text(encoding="utf-8")
    if PLACEHOLDER not in body:
        raise BadInput(f"cloudformation: {templates_dir / TEMPLATE} has no {PLACEHOLDER}")
    text = json.dumps(definition(rows_of(table), rule_text(), look_text(), digest))
    return body.replace(PLACEHOLDER, json.dumps(text))


def look_text() -> str:
    return jsonata_file("server_look.jsonata")


def timings(gated: Gated, table: Sequence[PlannedStep], alarms: Sequence[str]) -> list[dict]:
    """Each row's minimum hold, deadline (ms, this run's clock) and rule policy: what the
    local hold computes (gating.hold_plan), for the state machine to compare with $millis().
    """
    e = gated.engine
    windows = [s.window_s for s in e.cloudwatch.alarm_states(alarms).values()] if alarms else []
    alarm_s = e.runtime.aws_seconds(alarm_wait_s(max(windows))) if windows else 0.0
    period_s = e.runtime.aws_seconds(PERIOD_S)
    policy = metric_policy(e.spec.gates.metrics)
    found = []
    for seconds in hold_seconds(table):
        deadline = evidence_s(gated, seconds)
        found.append(
            {
                "minimum": round(max(seconds, alarm_s) * 1000),
                "deadline": round(max(deadline, seconds, alarm_s) * 1000),
                "policy": rule_policy(policy, looks_per_step(deadline, period_s)),
            }
        )
    return found


def execution_input(
    run: Run, record: ReleaseRecord, gated: Gated, table: Sequence[PlannedStep], lock_id: str
) -> dict[str, Any]:
    e, infra = run.engine, run.infra
    scale = e.runtime.aws_seconds(1.0)
    metrics = e.spec.gates.metrics
    alarms = gated.alarm_names("server-side")
    series = {"green": _dims(infra, gated.green.target_group_arn)}
    if gated.blue is not None:
        series["blue"] = _dims(infra, gated.blue.target_group_arn)
    probes = gated.probes_by_minute(e.runtime.aws_seconds(PERIOD_S))
    interval_s = max(PERIOD_S, math.ceil(e.spec.gates.interval_seconds / scale))
    return {
        "release": record_body(record),
        "journal": {"table": TABLE, "key": _key(e, RECORD_PREFIX + record.release_id)},
        "lock": {"table": TABLE, "key": _key(e, LOCK_KEY), "lock_id": lock_id},
        "rule_arn": e.elb.weights_rule_arn(infra.listener_arn),
        "green": {"target_group": gated.green.target_group_arn, "expected": gated.expected},
        "blue": {"target_group": gated.blue.target_group_arn} if gated.blue else None,
        "keep_blue": e.spec.rollback_window > 0,
        "prior_weights": restored_weights(e, infra, record),
        "alarms": alarms,
        "probes": {str(k): list(v) for k, v in probes.by_minute.items()},
        "clock": {
            "period": round(e.runtime.aws_seconds(PERIOD_S) * 1000),
            "delay": round(e.runtime.aws_seconds(metrics.publication_delay_seconds) * 1000),
            "baseline": round(e.runtime.aws_seconds(BASELINE_S) * 1000),
            "interval_s": int(interval_s),
        },
        "metrics": {
            "enabled": metrics.enabled,
            "queries": e.cloudwatch.queries(series, metrics.latency_statistic),
            "min_minute_requests": float(metrics.min_minute_requests),
            "max_latency": metrics.max_latency_seconds,
        },
        "max_failures": e.spec.gates.max_failures,
        "timings": timings(gated, table, alarms),
    }


def _dims(infra: Infra, target_group_arn: str) -> dict[str, str]:
    return {
        "LoadBalancer": infra.load_balancer_full_name,
        "TargetGroup": target_group_arn.rsplit(":", 1)[-1],
    }


def _key(engine: Engine, sort_key: str) -> dict[str, Any]:
    return {"pk": {"S": engine.names.scope}, "sk": {"S": sort_key}}


def server_interval_s(engine: Engine) -> int:
    """How often (AWS seconds) the state machine looks: once a minute at least, when
    CloudWatch publishes, so that a long release stays within an execution's history.
    """
    return int(max(PERIOD_S, math.ceil(engine.spec.gates.interval_seconds / _scale(engine))))


def _scale(engine: Engine) -> float:
    return engine.runtime.aws_seconds(1.0)


def hand_over(
    run: Run, record: ReleaseRecord, gated: Gated, table: Sequence[PlannedStep]
) -> ReleaseRecord:
    """Start the execution that runs the rest of the release: journalled first (a rerun
    attaches to it), then the lock handed over, then started. Refused (exit 2) before any
    of it if the execution could outlive Step Functions' history.
    """
    e = run.engine
    given_timings = timings(gated, table, gated.alarm_names("server-side"))
    deadlines_s = [t["deadline"] / 1000 / _scale(e) for t in given_timings]
    events = worst_case_events(deadlines_s, server_interval_s(e))
    if events > HISTORY_LIMIT * 0.8:
        raise BadInput(
            f"executor: stepfunctions: this strategy's longest run needs about {events} "
            f"history events, more than Step Functions keeps for one execution "
            f"({HISTORY_LIMIT}); shorten strategy.steps or the holds, or use executor: local"
        )
    machine = ensure_runner(e, run.infra, table, record.table)
    arn = execution_arn(machine, record.release_id)
    first = next(s.index for s in table if s.phase is Phase.STEP)
    record = run.checkpoint(record.at(Phase.STEP, step=first, execution=arn))
    reset_test_listener(e, run.infra)
    fence = e.records.fence
    if fence is None:
        raise ReleaseFailed("the lock is not held; the release was not handed over")
    given = execution_input(run, record, gated, table, fence.lock_id)
    worst_s = sum(t["deadline"] for t in given_timings) / 1000 + 3600 * max(1.0, _scale(e))
    holder = f"the Step Functions execution of release {record.release_id} ({record.version})"
    e.lock.hand_over(fence, holder, SERVER_SIDE, time.time() + worst_s)
    started = StepFunctions(e.runtime.aws).start(machine, record.release_id, given)
    e.report(f"release: handed over to Step Functions: {started.arn}")
    return record


# ---- following an execution ---------------------------------------------------------------


def follow(engine: Engine, record: ReleaseRecord, infra: Infra | None) -> ReleaseRecord:
    """Read the execution's history into events until it ends; then tidy what it may not
    touch, and end as the local runner would (GateFailed, NeedsHuman, or the record).
    Ctrl-C or a kill stops only the reading: the release goes on in AWS.
    """
    sfn = StepFunctions(engine.runtime.aws)
    teller = Teller(engine, record.version)
    engine.report(f"follow: release {record.release_id} runs in AWS ({record.execution})")
    while True:
        for event in sfn.history(record.execution, teller.seen):
            teller.tell(event)
        found = sfn.describe(record.execution)
        if found is None:
            raise NeedsHuman(f"the execution {record.execution} does not exist")
        if not found.running:
            for event in sfn.history(record.execution, teller.seen):
                teller.tell(event)
            teller.row_ended("done" if found.status == "SUCCEEDED" else "failed")
            return ended(engine, record, found, infra, teller.last or {})
        engine.sleep(FOLLOW_EVERY_S)


@dataclass
class Teller:
    """History events as deployer's own: each row a phase (started, finished), each look
    whose verdict changed a gate observation and a line, the end as the end.
    """

    engine: Engine
    version: str
    seen: int = 0
    row: tuple[str, str, float] | None = None  # phase, name, started (epoch seconds)
    said: str = ""
    at: float = 0.0  # the newest event's time
    last: dict[str, Any] | None = None  # the newest look

    def tell(self, event: dict[str, Any]) -> None:
        self.seen = max(self.seen, int(event["id"]))
        kind = str(event.get("type", ""))
        details: dict[str, Any] = next(
            (v for k, v in event.items() if k.endswith("EventDetails")), {}
        )
        name = str(details.get("name", ""))
        self.at = _epoch(event)
        if kind == "PassStateExited" and name.startswith("Row "):
            self.row_ended("done")
            step = name.removeprefix("Row ")
            phase = "watch" if step.startswith("watch") else "step"
            self.row = (phase, step, _epoch(event))
            self.engine.events.emit("phase_started", phase=phase, name=step)
            self.engine.report(f"traffic: {step} (run by Step Functions)")
        elif kind == "PassStateExited" and name == "Report":
            self.look(json.loads(details.get("output") or "{}"))
        elif kind in ("ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
            why = details.get("cause") or details.get("error") or kind
            self.engine.report(f"release: the execution ended: {why}")

    def row_ended(self, outcome: str) -> None:
        if self.row is None:
            return
        phase, name, started = self.row
        self.engine.events.emit(
            "phase_finished",
            phase=phase,
            name=name,
            seconds=round(max(0.0, self.at - started), 3),
            cpu_s=0.0,
            outcome=outcome,
        )
        self.row = None

    def look(self, look: dict[str, Any]) -> None:
        self.last = look
        rule = str(look.get("verdict") or "")
        what = (
            look.get("reason")
            or ("no users' requests to judge yet" if look.get("idle") else "")
            or (f"rule verdict {rule}" if rule else "no metric verdict")
        )
        line = f"{look.get('row')}: {what}"
        if line == self.said:
            return
        self.said = line
        extra = {"verdict": "inconclusive" if look.get("inconclusive") else rule.lower()}
        self.engine.events.emit(
            "gate_observation",
            gate=str(look.get("gate") or "metric") + " (in AWS)",
            kind=str(look.get("gate") or "metric"),
            passed=look.get("action") != "fail",
            detail=str(what),
            step=str(look.get("row", "")),
            version=self.version,
            evidence={k: look[k] for k in ("green", "blue", "failures") if look.get(k)},
            **(extra if rule else {}),
        )
        self.engine.report(
            f"gate: {line} ({look.get('healthy')} of {look.get('needed')} targets needed healthy)"
        )


def _epoch(event: dict[str, Any]) -> float:
    stamp = event.get("timestamp")
    return float(stamp.timestamp()) if stamp is not None else time.time()


def ended(
    engine: Engine,
    record: ReleaseRecord,
    execution: Execution,
    infra: Infra | None,
    look: dict[str, Any],
) -> ReleaseRecord:
    final = engine.journal.record(record.release_id) or record
    if execution.status == "SUCCEEDED" and final.outcome is Outcome.SUCCEEDED:
        if infra is not None:
            final = tidy_after_success(engine, infra, final)
        engine.report(f"release: {final.version} is live")
        return final
    reason = final.reason or execution.cause or execution.status
    if execution.error == "GateFailed":
        if infra is not None:
            put_aside_failed(engine, infra, final)
        reason = reason.removeprefix("gate ")
        gate = reason.split(":", 1)[0] if ":" in reason else str(look.get("gate") or "gate")
        evidence = {k: look[k] for k in ("green", "blue", "failures") if look.get(k)}
        raise GateFailed(gate, reason, str(look.get("row") or final.phase.value), evidence)
    if execution.status == "ABORTED" or execution.error == "Fenced":
        raise ReleaseFailed(f"release {record.release_id} was stopped: {reason}")
    raise NeedsHuman(
        f"the execution {execution.arn} ended {execution.status}: {reason}. Run `deployer "
        "status`, then `deployer abort` to put traffic back as the journal says"
    )


def _quiet(engine: Engine) -> bool:
    """No release or rollback in flight: a follower may tidy fleets."""
    return engine.records.inflight() is None


def tidy_after_success(engine: Engine, infra: Infra, record: ReleaseRecord) -> ReleaseRecord:
    """What the state machine may not touch: fleets older than the previous one go."""
    if not _quiet(engine):
        return record
    live = engine.fleets.observe(infra)
    keep = [record.fleet_stack] + ([record.previous_fleet] if record.previous_fleet else [])
    problems = engine.fleets.retire(live, fleets_to_retire(live, keep))
    if problems:
        engine.report(f"release: cleanup left work for gc{problems}")
    return record


def put_aside_failed(engine: Engine, infra: Infra, record: ReleaseRecord) -> None:
    """The fleet that failed its gates, scaled to zero or deleted (strategy.on_failure)."""
    if not _quiet(engine):
        return
    green = engine.fleets.observe(infra).fleet_by_stack(record.fleet_stack)
    if green is not None:
        problems = engine.fleets.put_aside(green, wait=False)
        if problems:
            engine.report(f"release: putting {green.stack_name} aside failed{problems}")


def stop_running(engine: Engine, record: ReleaseRecord, why: str) -> None:
    """Before an abort or rollback takes over: the execution stopped (it writes no more),
    and the lock it held freed for the caller to take.
    """
    sfn = StepFunctions(engine.runtime.aws)
    found = sfn.describe(record.execution)
    if found is not None and found.running:
        engine.report(f"abort: stopping the execution {record.execution}")
        sfn.stop(record.execution, why)
        engine.poller.until(
            "the execution to stop",
            lambda: _stopped(sfn, record.execution),
            60.0,
        )
    holder = engine.lock.lock.peek()
    if holder is not None and holder.host == SERVER_SIDE and record.release_id in holder.holder:
        engine.lock.lock.release(holder.lock_id)


def _stopped(sfn: StepFunctions, arn: str) -> Any:
    from deployer.aws.poller import Poll

    found = sfn.describe(arn)
    return Poll(found is None or not found.running, found.status if found else "gone")
