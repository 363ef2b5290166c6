"""The poller, on an injected clock: long waits run in microseconds."""

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from deployer.aws.poller import Poll, Poller
from deployer.errors import PollTimeout


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def poller_on(clock, **kwargs):
    return Poller(clock=clock.time, sleep=clock.sleep, **kwargs)


def done_at(clock, seconds, value="done"):
    """A check that is done once `seconds` have passed on the clock."""
    return lambda: Poll(clock.now >= seconds, f"{clock.now:.0f}s", value)


def test_returns_the_value_once_done_and_reports_each_new_status():
    clock = FakeClock()
    lines = []
    answers = iter([Poll(False, "CREATE_IN_PROGRESS")] * 3 + [Poll(True, "done", "stack")])
    poller = poller_on(clock, report=lines.append)
    assert poller.until("stack x", lambda: next(answers), deadline_s=60) == "stack"
    assert lines == ["waiting for stack x: CREATE_IN_PROGRESS"]


@pytest.mark.parametrize("takes", [3.0, 40.0, 300.0, 900.0])
def test_a_wait_ends_soon_after_what_it_waits_for_whatever_its_length(takes):
    clock = FakeClock()
    poller = poller_on(clock)
    poller.until("image", done_at(clock, takes), deadline_s=3600)
    late = clock.now - takes
    assert late <= max(0.3, 0.06 * takes)  # within about 5 % (plus jitter), or one short poll


def test_a_ten_minute_wait_costs_far_fewer_calls_than_polling_every_two_seconds():
    clock = FakeClock()
    calls = []
    poller = poller_on(clock)

    def check():
        calls.append(clock.now)
        return Poll(clock.now >= 600, "pending")

    poller.until("image", check, deadline_s=3600)
    assert 20 <= len(calls) <= 600 / 2 / 2
    assert max(clock.sleeps) <= poller.max_interval * 1.1


def test_a_fixed_interval_is_kept():
    clock = FakeClock()
    poller_on(clock).until("gates", done_at(clock, 10), deadline_s=60, interval=2.0)
    assert set(clock.sleeps) == {2.0}


def test_gives_up_at_the_deadline_saying_what_it_saw_last():
    clock = FakeClock()
    poller = poller_on(clock)
    with pytest.raises(PollTimeout) as caught:
        poller.until("targets healthy", lambda: Poll(False, "1/2 healthy"), deadline_s=600)
    assert 600 <= clock.now < 620
    assert caught.value.last_status == "1/2 healthy"
    assert "targets healthy" in str(caught.value)


def throttled():
    return ClientError(
        {
            "Error": {"Code": "Throttling", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "DescribeStacks",
    )


def test_throttling_and_a_brief_outage_are_ridden_out():
    clock = FakeClock()
    stats = []
    poller = poller_on(clock, on_wait=stats.append)

    def check():
        if 5 <= clock.now < 20:
            raise EndpointConnectionError(endpoint_url="https://cloudformation")
        if clock.now < 5:
            raise throttled()
        return Poll(clock.now >= 30, "CREATE_IN_PROGRESS", "stack")

    assert poller.until("stack", check, deadline_s=600) == "stack"
    assert stats[-1].transient_errors > 0 and stats[-1].outcome == "done"


def test_aws_silent_for_longer_than_the_patience_is_an_error():
    clock = FakeClock()
    poller = poller_on(clock, patience_s=60)

    def check():
        raise EndpointConnectionError(endpoint_url="https://cloudformation")

    with pytest.raises(EndpointConnectionError):
        poller.until("stack", check, deadline_s=600)
    assert 60 <= clock.now < 80


def test_an_error_that_is_not_transient_is_raised_at_once():
    clock = FakeClock()
    denied = ClientError(
        {"Error": {"Code": "AccessDenied", "Message": "no"}, "ResponseMetadata": {}}, "X"
    )

    def check():
        raise denied

    with pytest.raises(ClientError):
        poller_on(clock).until("stack", check, deadline_s=600)
    assert clock.now == 0
