"""The poller, on an injected clock: long waits run in microseconds."""

import pytest

from deployer.aws.poller import Poll, Poller, PollTimeout


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_the_value_once_done_and_reports_each_new_status():
    clock = FakeClock()
    lines = []
    answers = iter([Poll(False, "CREATE_IN_PROGRESS")] * 3 + [Poll(True, "done", "stack")])
    poller = Poller(clock=clock.time, sleep=clock.sleep, report=lines.append)
    assert poller.until("stack x", lambda: next(answers), deadline_s=60) == "stack"
    assert lines == ["waiting for stack x: CREATE_IN_PROGRESS"]


def test_intervals_are_short_jittered_and_capped():
    clock = FakeClock()
    poller = Poller(clock=clock.time, sleep=clock.sleep, first_interval=0.25, max_interval=2.0)
    with pytest.raises(PollTimeout):
        poller.until("never", lambda: Poll(False, "pending"), deadline_s=30)
    assert clock.sleeps[0] <= 0.3
    assert max(clock.sleeps) <= 2.0 * 1.2
    assert len(set(round(s, 6) for s in clock.sleeps)) > 5


def test_gives_up_at_the_deadline_saying_what_it_saw_last():
    clock = FakeClock()
    poller = Poller(clock=clock.time, sleep=clock.sleep)
    with pytest.raises(PollTimeout) as caught:
        poller.until("targets healthy", lambda: Poll(False, "1/2 healthy"), deadline_s=600)
    assert 600 <= clock.now < 603
    assert caught.value.last_status == "1/2 healthy"
    assert "targets healthy" in str(caught.value)
