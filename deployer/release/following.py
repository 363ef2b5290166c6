"""Following a release that runs in AWS (executor: stepfunctions): its execution's history
read into deployer's own events, its end turned into the local runner's outcome and exit
code, and what the state machine may not touch tidied once it ended. Reading only: killing
the follower changes nothing in AWS. `stop_running` is for the commands that take a running
release over (abort, rollback, destroy).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from deployer.aws.stepfunctions import Execution, StepFunctions
from deployer.core.decide import fleets_to_retire
from deployer.core.model import Outcome, ReleaseRecord
from deployer.errors import GateFailed, NeedsHuman, ReleaseFailed
from deployer.infra.stacks import Infra
from deployer.release.engine import Engine
from deployer.release.locking import SERVER_SIDE

FOLLOW_EVERY_S = 1.0


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
            phase = step.split(" ", 1)[0]  # step, pause or watch
            self.row = (phase, step, _epoch(event))
            self.engine.events.emit("phase_started", phase=phase, name=step)
            if phase == "pause":
                self.engine.report(
                    f"pause: {step} (in AWS): `deployer promote` goes on, `deployer abort` "
                    "rolls back"
                )
            else:
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
        gate = str(look.get("gate") or "gate")
        detail = str(look.get("detail") or reason)
        evidence = {k: look[k] for k in ("green", "blue", "failures") if look.get(k)}
        raise GateFailed(gate, detail, str(look.get("row") or final.phase.value), evidence)
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
