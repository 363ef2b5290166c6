"""The sandbox's shared state: the behaviours in force, the time scale, the scheduler of
modelled transitions (a stack completing, an image becoming available) and the timeline of
modelled operations that `bench/` reads to tell AWS's time from deployer's.

moto's models are changed both by request threads and by scheduled transitions, so both hold
`lock` while they touch them.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deployer.sandbox.profile import Behaviours

TIMELINE_LIMIT = 20_000


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    action: Callable[[], None] = field(compare=False)


class World:
    def __init__(
        self, behaviours: Behaviours, time_scale: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.behaviours = behaviours
        self.time_scale = time_scale
        self.profile = "fast"
        self.clock = clock
        self.lock = threading.RLock()
        self.rng = random.Random(behaviours.seed)
        self._due: list[_Due] = []
        self._seq = itertools.count()
        self._timeline: deque[dict[str, Any]] = deque(maxlen=TIMELINE_LIMIT)
        self._timeline_lock = threading.Lock()
        self.outage_until = 0.0

    def configure(self, behaviours: Behaviours) -> None:
        with self.lock:
            reseed = behaviours.seed != self.behaviours.seed
            self.behaviours = behaviours
            if reseed:
                self.rng = random.Random(behaviours.seed)

    def scaled(self, seconds: float) -> float:
        """A modelled AWS duration in real seconds."""
        return seconds * self.time_scale

    # ---- scheduled transitions ---------------------------------------------------------------

    def later(self, seconds: float, action: Callable[[], None]) -> None:
        """Run `action` (under the lock) once `seconds` real seconds have passed."""
        with self.lock:
            heapq.heappush(self._due, _Due(self.clock() + seconds, next(self._seq), action))

    def tick(self) -> None:
        """Run every transition that is due. Called by the daemon loop and before each request."""
        with self.lock:
            now = self.clock()
            while self._due and self._due[0].at <= now:
                heapq.heappop(self._due).action()

    # ---- timeline ----------------------------------------------------------------------------

    def span(self, kind: str, ident: str, start: float, end: float) -> None:
        """Record a modelled AWS operation that takes [start, end] (epoch seconds)."""
        with self._timeline_lock:
            self._timeline.append({"kind": kind, "id": ident, "start": start, "end": end})

    def timeline(self, since: float = 0.0) -> list[dict[str, Any]]:
        with self._timeline_lock:
            return [s for s in self._timeline if s["end"] >= since]

    # ---- outages -----------------------------------------------------------------------------

    @property
    def in_outage(self) -> bool:
        return self.clock() < self.outage_until


WORLD = World(Behaviours(), 1.0)
"""The one world of this sandbox process; the daemon configures it at start."""
