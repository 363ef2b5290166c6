"""Which fleet `deployer logs` and `deployer exec` mean: `live` (the fleet carrying most of
production's traffic), `green` (the newest fleet that is not live: the release in flight, or
the one that last failed), or a version (its newest fleet; for logs, also a retired one whose
lines are still within the log group's retention).
"""

from __future__ import annotations

from dataclasses import dataclass

from deployer.core.model import Fleet, LiveState
from deployer.core.names import Version
from deployer.errors import BadInput
from deployer.release.engine import Engine

LIVE, GREEN = "live", "green"


@dataclass(frozen=True)
class Choice:
    version: str
    role: str  # live, green, or the version asked for
    fleet: Fleet | None  # None: no fleet of that version exists any more


def observed(engine: Engine) -> LiveState:
    infra = engine.stacks.existing()
    return engine.fleets.observe(infra) if infra is not None else LiveState()


def choose(engine: Engine, selector: str, live: LiveState | None = None) -> Choice:
    """`selector` is live, green or a version. Nothing to choose is bad input (exit 2)."""
    scope = engine.names.scope
    if selector not in (LIVE, GREEN):
        version = Version.parse(selector).text  # exit 2 before any AWS call
        live = observed(engine) if live is None else live
        return Choice(version, version, newest(live, version))
    live = observed(engine) if live is None else live
    current = live.live_fleet
    if selector == LIVE:
        if current is None:
            raise BadInput(f"nothing is live in {scope}: give a version, or release one first")
        return Choice(current.version, LIVE, current)
    others = [f for f in live.fleets if current is None or f.stack_name != current.stack_name]
    if not others:
        raise BadInput(f"no green fleet in {scope}: only the live one exists")
    green = max(others, key=lambda f: f.release_id)
    return Choice(green.version, GREEN, green)


def newest(live: LiveState, version: str) -> Fleet | None:
    """The fleet of `version` that serves (or else the newest one), or None."""
    mine = [f for f in live.fleets if f.version == version]
    if not mine:
        return None
    return max(mine, key=lambda f: (f.weight, f.release_id))
