"""The lease lock and the fenced journal, on DynamoDB in a moto server over HTTP."""

import threading

import pytest

from deployer.aws.dynamodb import Journal
from deployer.aws.lease_lock import LeaseLock
from deployer.core.model import Actor, Kind, ReleaseRecord
from deployer.errors import BadInput, ExitCode, LockHeld
from deployer.release.locking import LockClient, unlock

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def client(aws, clock, name, host="ci-runner-1", pid=100, lease=60, is_gone=lambda _pid: False):
    return LockClient(
        LeaseLock(aws, "hello/prod"),
        name,
        lease,
        report=lambda _l: None,
        clock=clock,
        sleep=clock.sleep,
        host=host,
        pid=pid,
        is_gone=is_gone,
    )


@pytest.fixture
def journal(aws, fast_poller):
    journal = Journal(aws, fast_poller, "hello/prod")
    journal.ensure_table()
    return journal


def record(version="v1"):
    return ReleaseRecord(
        release_id=f"r-{version}",
        kind=Kind.RELEASE,
        version=version,
        started_at="2026-11-26T10:00:00Z",
        actor=Actor("ci", "runner"),
    )


def test_a_second_holder_is_refused_with_the_holders_name_and_lock_id(aws, journal):
    clock = Clock()
    first = client(aws, clock, "alice@runner-1 (job 7)").acquire("10:00", wait_s=None)
    with pytest.raises(LockHeld) as caught:
        client(aws, clock, "bob@runner-2").acquire("10:01", wait_s=None)
    assert caught.value.exit_code == ExitCode.LOCK_HELD
    assert "alice@runner-1 (job 7)" in caught.value.message
    assert first.lock_id in caught.value.message


def test_waiting_queues_until_the_holder_releases(aws, journal):
    clock = Clock()
    holder = client(aws, clock, "alice")
    fence = holder.acquire("10:00", wait_s=None)
    waiter = client(aws, clock, "bob")
    original_sleep = clock.sleep

    def sleep_then_release(seconds):
        original_sleep(seconds)
        if clock.now > 1_800_000_005:
            holder.lock.release(fence.lock_id)

    waiter.sleep = sleep_then_release
    second = waiter.acquire("10:00", wait_s=60)
    assert second.token == fence.token + 1


def test_a_stale_lease_is_taken_over_and_the_old_holders_writes_are_refused(aws, journal):
    clock = Clock()
    old = client(aws, clock, "killed-run", lease=30).acquire("10:00", wait_s=None)
    assert journal.write(record("v1"), old)
    clock.now += 31  # the killed run's lease has run out
    new = client(aws, clock, "rerun", host="ci-runner-2").acquire("10:01", wait_s=None)
    assert new.token > old.token
    assert not journal.write(record("v1-late"), old)  # fenced: the old token no longer holds
    assert journal.write(record("v2"), new)
    assert [r.version for r in journal.history()] == ["v2", "v1"]


def test_a_holder_killed_on_this_host_is_taken_over_at_once(aws, journal):
    clock = Clock()
    dead = client(aws, clock, "killed", pid=4242).acquire("10:00", wait_s=None)
    rerun = client(aws, clock, "rerun", pid=4343, is_gone=lambda pid: pid == 4242)
    fence = rerun.acquire("10:00", wait_s=None)
    assert fence.token == dead.token + 1


def test_a_heartbeat_keeps_the_lease(aws, journal):
    clock = Clock()
    holder = client(aws, clock, "alice", lease=30)
    fence = holder.acquire("10:00", wait_s=None)
    clock.now += 20
    assert holder.lock.heartbeat(fence, clock(), 30)
    clock.now += 20  # 40 s after acquiring, but 20 s after the heartbeat
    with pytest.raises(LockHeld):
        client(aws, clock, "bob", host="elsewhere").acquire("10:00", wait_s=None)


def test_unlock_needs_the_right_id(aws, journal):
    clock = Clock()
    fence = client(aws, clock, "alice").acquire("10:00", wait_s=None)
    lock = LeaseLock(aws, "hello/prod")
    with pytest.raises(BadInput, match="not by lock-wrong"):
        unlock(lock, "lock-wrong", clock)
    assert lock.current() is not None
    assert unlock(lock, fence.lock_id, clock).holder == "alice"
    assert lock.current() is None
    with pytest.raises(BadInput, match="is not locked"):
        unlock(lock, fence.lock_id, clock)


def test_twenty_threads_racing_get_exactly_one_lock(sandbox_aws, fast_poller):
    """On the sandbox, whose DynamoDB writes are atomic as on AWS (plain moto's are not)."""
    aws = sandbox_aws
    Journal(aws, fast_poller, "hello/prod").ensure_table()
    clock = Clock()
    winners, losers = [], []

    def race(n):
        try:
            winners.append(client(aws, clock, f"run-{n}", pid=n).acquire("10:00", None))
        except LockHeld:
            losers.append(n)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and len(losers) == 19
