"""The release as a table of steps, and where a run starts in it. Pure.

    bake -> fleet -> gate -> traffic step 1 .. n -> watch -> retire

One loop runs the table (deployer.release.loop), journalling before and after each step. A new
release starts at the top; a rerun after a kill starts at the journalled step: the one that
was running, or the next one if it had completed. A run that was killed while traffic was
moving starts again at the gate, which sends production traffic back to the previous fleet
first: the new fleet's gates are unproven for this run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from deployer.core.model import Outcome, Phase, ReleaseRecord
from deployer.core.rollout import Step, plan_steps

TRAFFIC_PHASES = frozenset({Phase.SWITCH, Phase.STEP, Phase.PAUSE, Phase.WATCH, Phase.ROLLBACK})


@dataclass(frozen=True)
class PlannedStep:
    phase: Phase
    traffic: Step | None = None  # for Phase.STEP: the weights and the hold
    hold_seconds: float = 0.0  # for Phase.WATCH; for Phase.PAUSE, how long it waits
    after: int = -1  # for Phase.PAUSE: the step whose traffic it holds

    @property
    def index(self) -> int:
        if self.phase is Phase.PAUSE:
            return self.after
        return self.traffic.index if self.traffic is not None else -1

    @property
    def name(self) -> str:
        if self.traffic is not None:
            return self.traffic.name
        if self.phase is Phase.WATCH:
            return f"watch for {self.hold_seconds:g}s"
        if self.phase is Phase.PAUSE:
            return f"pause after step {self.after + 1}"
        return self.phase.value


def release_table(
    kind: str,
    weights: Sequence[int],
    hold_s: int,
    watch_s: int,
    has_blue: bool,
    pauses_after: Collection[int] = (),
    pause_s: int = 3600,
) -> list[PlannedStep]:
    """`pauses_after`: the steps a pause follows (a canary with a blue only: a first
    release is one step, with nothing to pause).
    """
    table = [PlannedStep(Phase.BAKE), PlannedStep(Phase.FLEET), PlannedStep(Phase.GATE)]
    traffic = plan_steps(kind, weights, hold_s, has_blue)
    for step in traffic:
        table.append(PlannedStep(Phase.STEP, step))
        if len(traffic) > 1 and step.index in pauses_after:
            table.append(PlannedStep(Phase.PAUSE, hold_seconds=pause_s, after=step.index))
    if watch_s > 0:
        table.append(PlannedStep(Phase.WATCH, hold_seconds=watch_s))
    table.append(PlannedStep(Phase.RETIRE))
    return table


def table_digest(table: Sequence[PlannedStep]) -> str:
    """What names a release's table in its record: a resume runs the table it started with,
    and a release whose strategy changed since is superseded, not resumed on another table.
    """
    rows = [f"{step.phase.value}:{step.name}:{step.hold_seconds:g}" for step in table]
    rows += [
        f"{step.traffic.green_weight}/{step.traffic.blue_weight}/{step.traffic.hold_seconds:g}"
        for step in table
        if step.traffic is not None
    ]
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]


def _position(table: Sequence[PlannedStep], phase: Phase, index: int = -1) -> int:
    for position, step in enumerate(table):
        if step.phase is phase and (phase is not Phase.STEP or step.index == index):
            return position
    raise ValueError(f"no step {phase.value} {index} in this release's table")


def remaining(table: Sequence[PlannedStep], record: ReleaseRecord) -> list[PlannedStep]:
    """The steps a run of `record` still has to take."""
    if record.outcome is not Outcome.IN_PROGRESS or record.phase is Phase.DONE:
        return []
    if record.phase is Phase.PREFLIGHT:
        return list(table)
    if record.phase in TRAFFIC_PHASES:
        return list(table[_position(table, Phase.GATE) :])
    start = _position(table, record.phase, record.step)
    return list(table[start + 1 if record.phase_done else start :])
