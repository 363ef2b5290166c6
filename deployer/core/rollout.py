"""Rollout steps: how traffic moves from blue to green, one listener change per step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    index: int
    green_weight: int
    blue_weight: int
    hold_seconds: int

    @property
    def name(self) -> str:
        total = self.green_weight + self.blue_weight
        if self.blue_weight == 0:
            return f"step {self.index + 1}: all traffic"
        return f"step {self.index + 1}: canary {self.green_weight}/{total}"


def plan_steps(kind: str, weights: Sequence[int], hold_seconds: int, has_blue: bool) -> list[Step]:
    """all_at_once: one step. canary: green's weight rises through `weights`; blue gets the rest.

    With nothing live there is nothing to split traffic with, so a first release is one step.
    Every step holds for `hold_seconds`, the last one too: green must pass its gates under
    full traffic before blue may be released.
    """
    if kind != "canary" or not has_blue:
        return [Step(0, 100, 0, hold_seconds)]
    final = weights[-1]
    return [Step(i, w, final - w, hold_seconds) for i, w in enumerate(weights)]


def step_weights(step: Step, green_arn: str, blue_arn: str | None) -> dict[str, int]:
    weights = {green_arn: step.green_weight}
    if blue_arn is not None and blue_arn != green_arn:
        weights[blue_arn] = step.blue_weight
    return weights


def restore_weights(prior: Mapping[str, int], green_arn: str) -> dict[str, int]:
    """The listener as it was before the release, with green gone from it."""
    return {arn: weight for arn, weight in prior.items() if arn != green_arn}
