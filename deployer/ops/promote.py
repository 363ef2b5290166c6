"""`deployer promote`: a release waiting in a pause (strategy.steps: [10, pause, 100]) goes
on. A local release reads a signal from the journal; one running in AWS waits on a task
token its execution keeps in the journal, which promote hands back. Run twice, the second
finds no pause and changes nothing.
"""

from __future__ import annotations

from deployer.aws.stepfunctions import StepFunctions
from deployer.core.model import Outcome, Phase, ReleaseRecord
from deployer.ops.rollback import OperatorResult
from deployer.release.engine import Engine
from deployer.release.steps import promote_signal

MOVED_ON_S = 30.0  # how long promote waits to see the release leave its pause


def promote(engine: Engine) -> OperatorResult:
    engine.check_reachable()
    record = engine.records.inflight()
    if record is None or record.phase is not Phase.PAUSE:
        where = (
            f"release {record.release_id} of {record.version} is at {record.phase.value}"
            if record is not None
            else "no release is in flight"
        )
        return _said(
            engine, OperatorResult(record, False, f"{where}, not in a pause; nothing to promote")
        )
    if record.execution:
        if not record.pause_token:
            message = (
                f"release {record.release_id} is entering its pause in AWS; run `deployer "
                "promote` again in a moment"
            )
            return _said(engine, OperatorResult(record, False, message))
        if not StepFunctions(engine.runtime.aws).send_task_success(record.pause_token):
            return _said(engine, OperatorResult(record, False, "its pause already ended"))
    else:
        engine.journal.send_signal(record.release_id, promote_signal(record.step), engine.stamp())
    moved = _moved_on(engine, record)
    where = (
        f"now at {moved.phase.value}"
        if moved.outcome is Outcome.IN_PROGRESS
        else (f"{moved.outcome.value}")
    )
    message = f"promoted release {record.release_id} of {record.version} ({where})"
    return _said(engine, OperatorResult(moved, True, message))


def _moved_on(engine: Engine, paused: ReleaseRecord) -> ReleaseRecord:
    """The release's record once it left the pause (or as it is after MOVED_ON_S)."""
    started = engine.clock()
    while True:
        now = engine.journal.record(paused.release_id) or paused
        left = now.phase is not Phase.PAUSE or now.step != paused.step
        if left or now.outcome is not Outcome.IN_PROGRESS or engine.clock() - started > MOVED_ON_S:
            return now
        engine.sleep(0.5)


def _said(engine: Engine, result: OperatorResult) -> OperatorResult:
    engine.report(f"promote: {result.message}")
    return result
