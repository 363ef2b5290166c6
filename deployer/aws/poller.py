"""Our poller: short jittered intervals, a deadline per phase, and it says what it waits on.

boto3 waiters poll every 15-30 s, which is too slow for a release that should take a minute.
Clock and sleep are injected, so scenario tests of long waits run in milliseconds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Poll(Generic[T]):
    """One observation: done (with a value) or not yet, with a line saying what was seen."""

    done: bool
    status: str
    value: T | None = None


class PollTimeout(Exception):
    def __init__(self, what: str, waited: float, last_status: str) -> None:
        super().__init__(
            f"gave up waiting for {what} after {waited:.0f}s; last seen: {last_status}"
        )
        self.what = what
        self.last_status = last_status


@dataclass
class Poller:
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    report: Callable[[str], None] = lambda _line: None
    first_interval: float = 0.25
    max_interval: float = 2.0
    rng: random.Random = field(default_factory=random.Random)

    def until(self, what: str, check: Callable[[], Poll[T]], deadline_s: float) -> T:
        """Call `check` until it is done; raise PollTimeout after `deadline_s` seconds."""
        start = self.clock()
        interval = self.first_interval
        last = ""
        while True:
            observed = check()
            if observed.done:
                return observed.value  # type: ignore[return-value]
            if observed.status != last:
                self.report(f"waiting for {what}: {observed.status}")
                last = observed.status
            waited = self.clock() - start
            if waited >= deadline_s:
                raise PollTimeout(what, waited, observed.status)
            pause = min(interval * self.rng.uniform(0.8, 1.2), max(deadline_s - waited, 0.01))
            self.sleep(pause)
            interval = min(interval * 1.5, self.max_interval)
