"""Our poller: intervals that grow with the wait, a deadline per phase, and it says what it
waits on.

boto3 waiters poll every 15-30 s, which is too slow for a release that should take a minute;
polling every second for a ten-minute image wait is wasteful. So the interval is a fixed share
(`share`, 5 %) of the time waited so far, between `first_interval` and `max_interval`: a wait
ends at most about 5 % after what it waited for, whatever its length, and a long wait costs
few calls. A check that meets a transient AWS error (throttling, 5xx, no connection) counts as
"not yet", so waits ride out brief outages; when AWS has not answered for `patience_s` in a
row, the error is raised.

Clock and sleep are injected, so scenario tests of long waits run in milliseconds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.session import error_code, is_transient
from deployer.errors import PollTimeout

T = TypeVar("T")


@dataclass(frozen=True)
class Poll(Generic[T]):
    """One observation: done (with a value) or not yet, with a line saying what was seen."""

    done: bool
    status: str
    value: T | None = None


@dataclass(frozen=True)
class WaitStats:
    """What one wait cost: for benchmarks and the event stream."""

    what: str
    seconds: float
    polls: int
    api_calls: int  # all AWS calls made meanwhile (the checks', and any other thread's)
    transient_errors: int
    outcome: str  # "done", "timeout" or "error"


@dataclass
class Poller:
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    report: Callable[[str], None] = lambda _line: None
    first_interval: float = 0.25
    max_interval: float = 15.0
    share: float = 0.05
    patience_s: float = 120.0
    rng: random.Random = field(default_factory=random.Random)
    on_wait: Callable[[WaitStats], None] = lambda _stats: None
    count_calls: Callable[[], int] = lambda: 0
    # The run's event stream (deployer.output.events.Events): wait_started, wait_status and
    # wait_finished. Without one, a changed status is a line of `report`.
    events: Any = None

    def next_interval(self, waited: float, floor: float | None = None) -> float:
        base = max(floor if floor is not None else self.first_interval, waited * self.share)
        return min(base, self.max_interval) * self.rng.uniform(0.9, 1.1)

    def until(
        self,
        what: str,
        check: Callable[[], Poll[T]],
        deadline_s: float,
        interval: float | None = None,
    ) -> T:
        """Call `check` until it is done; raise PollTimeout after `deadline_s` seconds.

        `interval` fixes the pause between checks (gates are evaluated at their own rhythm);
        by default it grows with the time waited.
        """
        start = self.clock()
        calls_before = self.count_calls()
        last = ""
        polls = transient = 0
        failing_since: float | None = None
        outcome = "error"
        if self.events is not None:
            self.events.emit("wait_started", what=what)
        try:
            while True:
                polls += 1
                try:
                    observed = check()
                    failing_since = None
                except (ClientError, BotoCoreError) as exc:
                    now = self.clock()
                    failing_since = now if failing_since is None else failing_since
                    if not is_transient(exc) or now - failing_since >= self.patience_s:
                        raise
                    transient += 1
                    observed = Poll(False, f"AWS did not answer ({error_code(exc) or exc})")
                if observed.done:
                    outcome = "done"
                    return observed.value  # type: ignore[return-value]
                if observed.status != last:
                    if self.events is not None:
                        self.events.emit("wait_status", what=what, status=observed.status)
                    else:
                        self.report(f"waiting for {what}: {observed.status}")
                    last = observed.status
                waited = self.clock() - start
                if waited >= deadline_s:
                    outcome = "timeout"
                    raise PollTimeout(what, waited, observed.status)
                pause = interval if interval is not None else self.next_interval(waited)
                self.sleep(min(pause, max(deadline_s - waited, 0.01)))
        finally:
            calls = self.count_calls() - calls_before
            stats = WaitStats(what, self.clock() - start, polls, calls, transient, outcome)
            self.on_wait(stats)
            if self.events is not None:
                self.events.emit(
                    "wait_finished",
                    what=what,
                    seconds=round(stats.seconds, 3),
                    polls=polls,
                    api_calls=calls,
                    transient_errors=transient,
                    outcome=outcome,
                )
