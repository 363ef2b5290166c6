"""The journal of releases and the lock that fences it: a run writes only while it holds the
lease, so a run that lost it cannot overwrite what its successor recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from deployer.aws.dynamodb import Journal
from deployer.aws.lease_lock import Fence, LeaseLock
from deployer.aws.session import AwsContext
from deployer.core.decide import in_flight
from deployer.core.model import Actor, Kind, ReleaseRecord
from deployer.core.names import Names, new_run_id
from deployer.errors import LeaseLost
from deployer.output.events import Events
from deployer.release.locking import LockClient


class Records:
    def __init__(
        self,
        aws: AwsContext,
        journal: Journal,
        lock: LockClient,
        names: Names,
        actor: Actor,
        events: Events,
        now: Callable[[], datetime],
        stamp: Callable[[], str],
        labelled: Callable[[dict[str, int]], dict[str, int]],
        lease_seconds: float,
        report: Callable[[str], None],
    ) -> None:
        self.aws = aws
        self.journal = journal
        self.lock = lock
        self.names = names
        self.actor = actor
        self.events = events
        self.now = now
        self.stamp = stamp
        self.labelled = labelled
        self.lease_seconds = lease_seconds
        self.report = report
        self.fence: Fence | None = None
        self.on_write: Callable[[ReleaseRecord], None] = lambda _record: None
        self._releases_seen: set[str] = set()

    @contextmanager
    def locked(self, wait_s: float | None) -> Iterator[Fence]:
        self.journal.ensure_table()
        with self.lock.held(self.stamp(), wait_s) as fence:
            self.fence = fence
            try:
                yield fence
            finally:
                self.fence = None

    def write(self, record: ReleaseRecord) -> ReleaseRecord:
        """Journal a transition, fenced by our lock: a run that lost its lease cannot write."""
        if not self.journal.write(record, self.fence):
            raise LeaseLost(
                f"the lock on {self.names.scope} was taken over; this run stops "
                f"without acting further (release {record.release_id})"
            )
        if record.release_id not in self._releases_seen:
            self._releases_seen.add(record.release_id)
            self.events.emit(
                "release",
                release_id=record.release_id,
                kind=record.kind.value,
                version=record.version,
                prior_weights=self.labelled(dict(record.prior_weights)),
            )
        self.on_write(record)
        return record

    def inflight(self) -> ReleaseRecord | None:
        """The newest release or rollback still in progress (its run was killed or is
        running): what `status` shows as in flight, a rerun resumes and `abort` rolls back.
        """
        return in_flight(self.journal.history(limit=20))

    def new(self, kind: Kind, version: str, **fields: object) -> ReleaseRecord:
        return ReleaseRecord(
            release_id=new_run_id(self.now()),
            kind=kind,
            version=version,
            started_at=self.stamp(),
            actor=self.actor,
            **fields,  # type: ignore[arg-type]
        )

    # ---- the bake lock: one bake of an app and key at a time, across environments ----------

    def _bake_lock_client(self, bake_key: str) -> LockClient:
        scope = f"bake/{self.names.app}/{bake_key[:16]}"
        return LockClient(
            LeaseLock(self.aws, scope), str(self.actor), self.lease_seconds, self.report
        )

    @contextmanager
    def bake_lock(self, bake_key: str, deadline_s: float) -> Iterator[Fence]:
        """The second bake of the same key waits, then finds the image the first one made."""
        self.journal.ensure_table()
        client = self._bake_lock_client(bake_key)
        current = client.holder_elsewhere()
        if current is not None:
            self.report(f"bake: {current.holder} is baking the same image; waiting for it")
        with client.held(self.stamp(), deadline_s) as fence:
            yield fence

    def bake_in_progress(self, bake_key: str) -> bool:
        """Whether a live run (not this one) holds the bake lock of `bake_key`."""
        return self._bake_lock_client(bake_key).holder_elsewhere() is not None
