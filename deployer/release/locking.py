"""Holding the release lock: acquire (or queue with --wait), heartbeat, release.

Two pipelines never deploy at once. A holder killed on this same host (its pid is gone) is
taken over at once; one killed elsewhere, once its lease expires. Every journal write is
fenced by the token, so a holder that lost its lease cannot write.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from deployer.aws.lease_lock import Fence, LeaseLock, LockHolder
from deployer.errors import BadInput, LeaseLost, LockHeld

Report = Callable[[str], None]


SERVER_SIDE = "AWS Step Functions"  # the host of a lock handed to an execution


def new_lock_id() -> str:
    return f"lock-{secrets.token_hex(6)}"


def process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def describe_holder(holder: LockHolder, now: float) -> str:
    left = max(0, int(holder.expires - now))
    return (
        f"{holder.holder} since {holder.acquired_at} (lock id {holder.lock_id}, "
        f"lease ends in {left}s)"
    )


@dataclass
class LockClient:
    lock: LeaseLock
    holder: str
    lease_s: float
    report: Report
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    host: str = socket.gethostname()
    pid: int = os.getpid()
    is_gone: Callable[[int], bool] = process_is_gone
    _beating: threading.Event | None = None
    _handed_over: set[str] = field(default_factory=set)

    def holder_elsewhere(self) -> LockHolder | None:
        """One consistent read: the holder, if another live run holds the lock. Ours, an
        expired lease, or one left by a dead run on this host (acquire takes it over) is None.
        """
        current = self.lock.peek()
        if current is None or current.expires < self.clock():
            return None
        if current.host == self.host and (current.pid == self.pid or self.is_gone(current.pid)):
            return None
        return current

    def refuse_if_held(self, stamp: str, unless_server_side: bool = False) -> None:
        """If another live run holds the lock, raise LockHeld now, before the preflight's
        work. Taking the lock (`acquire`) stays where it is. `unless_server_side`: a release
        running in AWS holds it, and the release command attaches to it or refuses itself.
        """
        current = self.holder_elsewhere()
        if current is not None and not (unless_server_side and current.host == SERVER_SIDE):
            raise LockHeld(self._held_message(current, self.clock()))

    def _held_message(self, current: LockHolder, now: float) -> str:
        if current.host == SERVER_SIDE:
            return (
                f"{self.lock.scope} is locked by {describe_holder(current, now)}: a release "
                "runs in AWS. `deployer follow` shows it; `deployer abort` stops it and "
                "puts traffic back; --wait queues behind it"
            )
        return (
            f"{self.lock.scope} is locked by {describe_holder(current, now)}. "
            "Queue behind it with --wait, or, if that run is gone for good, "
            f"`deployer unlock {current.lock_id}`"
        )

    def acquire(self, stamp: str, wait_s: float | None) -> Fence:
        """Take the lock, or raise LockHeld naming the holder (after `wait_s` seconds)."""
        lock_id = new_lock_id()
        started = self.clock()
        announced = False
        while True:
            now = self.clock()
            fence = self.lock.try_acquire(
                lock_id, self.holder, self.host, self.pid, now, self.lease_s, stamp
            )
            if fence is not None:
                return fence
            current = self.lock.current()
            if current is None:
                continue  # released between our two calls
            if current.host == self.host and current.pid != self.pid and self.is_gone(current.pid):
                fence = self.lock.try_acquire(
                    lock_id,
                    self.holder,
                    self.host,
                    self.pid,
                    now,
                    self.lease_s,
                    stamp,
                    replacing=current.lock_id,
                )
                if fence is not None:
                    self.report(
                        f"lock: took over {current.lock_id}; its process "
                        f"{current.pid} on this host is gone"
                    )
                    return fence
            waited = now - started
            if wait_s is None or waited >= wait_s:
                raise LockHeld(self._held_message(current, now))
            if not announced:
                self.report(f"lock: waiting for {describe_holder(current, now)}")
                announced = True
            self.sleep(min(1.0, max(0.05, wait_s - waited)))

    def hand_over(self, fence: Fence, holder: str, host: str, expires: float) -> None:
        """The lock goes to `holder` (a Step Functions execution), which releases it: this
        process stops beating and never releases it.
        """
        if self._beating is not None:
            self._beating.set()
        if not self.lock.hand_over(fence, holder, host, expires):
            raise LeaseLost(f"the lock on {self.lock.scope} was taken over before the hand-over")
        self._handed_over.add(fence.lock_id)

    def take_back(self, fence: Fence) -> None:
        """Undo a hand-over whose holder never started: the lock is this process's again,
        for its lease, so that it can put things back and release it as usual.
        """
        self.lock.hand_over(fence, self.holder, self.host, self.clock() + self.lease_s, self.pid)
        self._handed_over.discard(fence.lock_id)

    @contextmanager
    def held(self, stamp: str, wait_s: float | None) -> Iterator[Fence]:
        fence = self.acquire(stamp, wait_s)
        stop = threading.Event()
        self._beating = stop
        beat = threading.Thread(
            target=self._heartbeat, args=(fence, stop), daemon=True, name="lock-heartbeat"
        )
        beat.start()
        try:
            yield fence
        finally:
            stop.set()
            beat.join(timeout=5)
            try:
                if fence.lock_id not in self._handed_over:
                    self.lock.release(fence.lock_id)
            except (ClientError, BotoCoreError) as exc:  # must not hide why the run ended
                self.report(
                    f"lock: could not release {fence.lock_id} ({exc}); its lease ends in "
                    f"{self.lease_s:.0f}s, and a rerun on this host takes it over at once"
                )

    def _heartbeat(self, fence: Fence, stop: threading.Event) -> None:
        while not stop.wait(self.lease_s / 3):
            try:
                if not self.lock.heartbeat(fence, self.clock(), self.lease_s):
                    self.report("lock: lease lost; another run holds the lock now")
                    return
            except Exception as exc:  # a missed beat is survivable until the lease ends
                self.report(f"lock: heartbeat failed: {exc}")


def unlock(lock: LeaseLock, lock_id: str, clock: Callable[[], float] = time.time) -> LockHolder:
    """Release the lock only when given the id that holds it."""
    current = lock.current()
    if current is None:
        raise BadInput(f"{lock.scope} is not locked")
    if current.lock_id != lock_id:
        raise BadInput(
            f"{lock.scope} is held by {describe_holder(current, clock())}, "
            f"not by {lock_id}; nothing was changed"
        )
    if not lock.release(lock_id):
        raise BadInput(f"{lock_id} no longer holds {lock.scope}; nothing was changed")
    return current
