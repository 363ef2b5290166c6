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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.aws.dynamodb import LOCK_KEY, RECORD_PREFIX, TABLE, record_body
from deployer.aws.stepfunctions import StepFunctions, execution_arn
from deployer.core.deadlines import step_deadline_s
from deployer.core.gate_inputs import looks_per_step, rule_policy
from deployer.core.metrics import BASELINE_S, PERIOD_S, alarm_wait_s
from deployer.core.model import Phase, ReleaseRecord
from deployer.core.state_machine import HISTORY_LIMIT, Row, definition, worst_case_events
from deployer.core.steps import PlannedStep
from deployer.errors import BadInput, ReleaseFailed
from deployer.infra.stacks import Infra, StackSpec, ensure_stack
from deployer.release.engine import Engine
from deployer.release.gate_rule import jsonata_file, rule_text
from deployer.release.gating import Gated, evidence_s, metric_policy
from deployer.release.locking import SERVER_SIDE
from deployer.release.probes import dimensions
from deployer.release.steps import Run, reset_test_listener, restored_weights

if TYPE_CHECKING:
    from deployer.config.model import DeployConfig

SERVER_PHASES = frozenset({Phase.STEP, Phase.WATCH, Phase.RETIRE})
FOLLOW_EVERY_S = 1.0
TEMPLATE = "runner.yaml"
INPUT_LIMIT = 256 * 1024  # bytes: an execution's input, a state's output, a variable
SERVER_SIDE_STEP = "server-side"  # the gates' step name for the alarms a machine reads
PLACEHOLDER = '"__DEFINITION__"'


def runs_server_side(engine: Engine, record: ReleaseRecord) -> bool:
    """With executor: stepfunctions, every release with a previous fleet: a first release
    has no users to protect and no listener rule to hand over, and runs here.
    """
    return engine.spec.executor == "stepfunctions" and bool(record.previous_fleet)


def rows_of(table: Sequence[PlannedStep]) -> list[Row]:
    """The table's traffic rows, in order: the steps, their pauses, the watch."""
    rows = []
    for step in table:
        if step.phase is Phase.STEP and step.traffic is not None:
            t = step.traffic
            rows.append(Row(step.name, "step", step.index, t.green_weight, t.blue_weight))
        elif step.phase is Phase.PAUSE:
            rows.append(Row(step.name, "pause", step.after, 0, 0, int(step.hold_seconds)))
        elif step.phase is Phase.WATCH:
            rows.append(Row(step.name, "watch", -1, 100, 0))
    return rows


def hold_seconds(table: Sequence[PlannedStep]) -> list[float | None]:
    """Each traffic row's hold, as rows_of orders them; None: a pause (it holds no gates)."""
    return [
        None
        if step.phase is Phase.PAUSE
        else step.traffic.hold_seconds
        if step.traffic is not None
        else step.hold_seconds
        for step in table
        if step.phase in (Phase.STEP, Phase.PAUSE, Phase.WATCH)
    ]


def machine_name(engine: Engine) -> str:
    return engine.names.runner_stack


def runner_spec(
    engine: Engine, listener_arn: str, table: Sequence[PlannedStep], digest: str
) -> StackSpec:
    """What the runner stack should be: runner.yaml with the definition of `table`."""
    return StackSpec(
        engine.names.runner_stack,
        runner_template(engine.templates_dir, table, digest),
        {
            "App": engine.names.app,
            "StateMachineName": machine_name(engine),
            "ListenerArn": listener_arn,
            "JournalScope": engine.names.scope,
            "JournalTable": TABLE,
            "PermissionsBoundaryArn": engine.spec.cloudformation.runner_boundary_arn,
        },
        {**engine.names.tags, "deployer:role": "runner"},
    )


def ensure_runner(engine: Engine, infra: Infra, table: Sequence[PlannedStep], digest: str) -> str:
    """The runner stack, its definition generated from `table`: made or updated; its ARN."""
    spec = runner_spec(engine, infra.listener_arn, table, digest)
    stack = ensure_stack(engine.cfn, *spec, engine.report, engine.replace_failed)
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


def timings(
    gated: Gated, table: Sequence[PlannedStep], alarms: Sequence[str]
) -> list[dict[str, Any]]:
    """Each row's minimum hold, deadline (ms, this run's clock) and rule policy: what the
    local hold computes (gating.hold_plan), for the state machine to compare with $millis().
    """
    e = gated.engine
    windows = [s.window_s for s in e.cloudwatch.alarm_states(alarms).values()] if alarms else []
    alarm_s = e.runtime.aws_seconds(alarm_wait_s(max(windows))) if windows else 0.0
    period_s = e.runtime.aws_seconds(PERIOD_S)
    policy = metric_policy(e.spec.gates.metrics)
    found: list[dict[str, Any]] = []
    for seconds in hold_seconds(table):
        if seconds is None:  # a pause: its wait is in the definition
            found.append({"minimum": 0, "deadline": 0, "policy": {}})
            continue
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
    run: Run, record: ReleaseRecord, gated: Gated, rows: list[dict[str, Any]], lock_id: str
) -> dict[str, Any]:
    """`rows`: each traffic row's timings (`timings`)."""
    e, infra = run.engine, run.infra
    metrics = e.spec.gates.metrics
    series = {"green": dimensions(infra.load_balancer_full_name, gated.green)}
    if gated.blue is not None:
        series["blue"] = dimensions(infra.load_balancer_full_name, gated.blue)
    probes = gated.probes_by_minute(e.runtime.aws_seconds(PERIOD_S))
    return {
        "release": record_body(record),
        "journal": {"table": TABLE, "key": _key(e, RECORD_PREFIX + record.release_id)},
        "lock": {"table": TABLE, "key": _key(e, LOCK_KEY), "lock_id": lock_id},
        "rule_arn": e.elb.weights_rule_arn(infra.listener_arn),
        "green": {"target_group": gated.green.target_group_arn, "expected": gated.expected},
        "blue": {"target_group": gated.blue.target_group_arn} if gated.blue else None,
        "keep_blue": e.spec.rollback_window > 0,
        "prior_weights": restored_weights(e, infra, record),
        "alarms": gated.alarm_names(SERVER_SIDE_STEP),
        "probes": {str(k): list(v) for k, v in probes.by_minute.items()},
        "clock": {
            "period": round(e.runtime.aws_seconds(PERIOD_S) * 1000),
            "delay": round(e.runtime.aws_seconds(metrics.publication_delay_seconds) * 1000),
            "baseline": round(e.runtime.aws_seconds(BASELINE_S) * 1000),
            "interval_s": server_interval_s(e),
        },
        "metrics": {
            "enabled": metrics.enabled,
            "queries": e.cloudwatch.queries(series, metrics.latency_statistic),
            "min_minute_requests": float(metrics.min_minute_requests),
            "max_latency": metrics.max_latency_seconds,
        },
        "max_failures": e.spec.gates.max_failures,
        "timings": rows,
    }


def _key(engine: Engine, sort_key: str) -> dict[str, Any]:
    return {"pk": {"S": engine.names.scope}, "sk": {"S": sort_key}}


def server_interval_s(engine: Engine) -> int:
    return look_interval_s(engine.spec.gates.interval_seconds, _scale(engine))


def look_interval_s(interval_seconds: float, aws_scale: float) -> int:
    """How often (AWS seconds) the state machine looks: once a minute at least, when
    CloudWatch publishes, so that a long release stays within an execution's history.
    """
    return int(max(PERIOD_S, math.ceil(interval_seconds / aws_scale)))


def history_problem(spec: DeployConfig, alarm_window_s: float, aws_scale: float) -> str:
    """Why `spec`'s release could outlive one execution's history (every row held to its
    deadline, a look a minute), or ''. Said before any change (the preflight).
    """
    strategy, metrics = spec.strategy, spec.gates.metrics
    policy = metric_policy(metrics) if metrics.enabled else None
    steps = len(strategy.weights) if strategy.kind == "canary" else 1
    holds = [strategy.bake_seconds] * steps + [strategy.watch_seconds] * (
        strategy.watch_seconds > 0
    )
    deadlines = [step_deadline_s(hold, alarm_window_s, policy) for hold in holds]
    events = worst_case_events(deadlines, look_interval_s(spec.gates.interval_seconds, aws_scale))
    if events <= HISTORY_LIMIT * 0.8:
        return ""
    return (
        f"executor: stepfunctions: this strategy's longest run needs about {events} history "
        f"events, more than Step Functions keeps for one execution ({HISTORY_LIMIT}); shorten "
        "strategy.steps, bake_seconds or watch_seconds, or use executor: local"
    )


def _scale(engine: Engine) -> float:
    return engine.runtime.aws_seconds(1.0)


def hand_over(
    run: Run, record: ReleaseRecord, gated: Gated, table: Sequence[PlannedStep]
) -> ReleaseRecord:
    """Start the execution that runs the rest of the release: journalled first (a rerun
    attaches to it), then the lock handed over, then started. (A strategy that could
    outlive an execution's history was refused by the preflight: `history_problem`.)
    """
    e = run.engine
    given_timings = timings(gated, table, gated.alarm_names(SERVER_SIDE_STEP))
    machine = ensure_runner(e, run.infra, table, record.table)
    arn = execution_arn(machine, record.release_id)
    first = next(s.index for s in table if s.phase is Phase.STEP)
    record = run.checkpoint(record.at(Phase.STEP, step=first, execution=arn))
    reset_test_listener(e, run.infra)
    fence = e.records.fence
    if fence is None:
        raise ReleaseFailed("the lock is not held; the release was not handed over")
    given = execution_input(run, record, gated, given_timings, fence.lock_id)
    size = len(json.dumps(given).encode())
    if size > INPUT_LIMIT * 0.8:  # Step Functions' payload limit, with room for the record
        raise BadInput(
            f"executor: stepfunctions: the execution's input would be {size // 1024} KiB, "
            f"near Step Functions' {INPUT_LIMIT // 1024} KiB limit (fewer gates.alarms or "
            "steps); nothing was started"
        )
    pauses_s = sum(row.wait_s for row in rows_of(table))
    worst_s = (
        sum(t["deadline"] for t in given_timings) / 1000 + pauses_s + 3600 * max(1.0, _scale(e))
    )
    holder = f"the Step Functions execution of release {record.release_id} ({record.version})"
    e.lock.hand_over(fence, holder, SERVER_SIDE, time.time() + worst_s)
    try:
        started = StepFunctions(e.runtime.aws).start(machine, record.release_id, given)
    except BaseException:  # never started: the lock is ours again, to put things back
        e.lock.take_back(fence)
        raise
    e.report(f"release: handed over to Step Functions: {started.arn}")
    return record
