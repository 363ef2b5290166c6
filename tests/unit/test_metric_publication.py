"""The sandbox's CloudWatch publishes a period when AWS would: after a delay that differs from
period to period, and now and then with samples that arrive after the period was first read,
so a reader sees it revised. Alarms judge only periods every delay has passed.
"""

from types import SimpleNamespace

from deployer.sandbox.cloudwatch_clock import Clock, MetricStore, evaluate_alarm

MINUTE = 60.0  # scale 1: modelled seconds are real seconds here
KEY = (("LoadBalancer", "app/lb/1"),)


class Now:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def store_with(clock: Clock, samples_per_minute: int, minutes: range) -> tuple[MetricStore, Now]:
    now = Now(0.0)
    store = MetricStore(clock, now)
    for minute in minutes:
        for n in range(samples_per_minute):
            store.add("RequestCount", KEY, 1.0, minute * MINUTE + n * MINUTE / samples_per_minute)
    return store, now


def counts(store: MetricStore, minutes: range) -> dict[int, int]:
    found = store.published(
        "RequestCount", KEY, minutes.start * MINUTE, minutes.stop * MINUTE, MINUTE
    )
    return {round(start / MINUTE): len(samples) for start, samples in found}


def test_each_period_is_readable_after_a_delay_of_its_own_within_the_range():
    clock = Clock(1.0, publication_delay_s=60.0, publication_spread_s=60.0, seed=3)
    minutes = range(100, 140)
    store, now = store_with(clock, 10, minutes)
    delays = [clock.readable_at(m) - (m + 1) * MINUTE for m in minutes]
    assert all(60.0 <= d <= 120.0 for d in delays)
    assert max(delays) - min(delays) > 30.0  # spread, not one figure
    for minute, delay in zip(minutes, delays, strict=True):
        now.at = (minute + 1) * MINUTE + delay - 0.5
        assert minute not in counts(store, minutes)
        now.at += 1.0
        assert counts(store, minutes)[minute] == 10


def test_a_period_already_read_is_revised_by_late_samples():
    clock = Clock(1.0, 60.0, late_fraction=0.2, late_s=60.0, seed=5)
    minutes = range(200, 220)
    store, now = store_with(clock, 50, minutes)
    first = {}
    for minute in minutes:  # each period read as soon as it is readable
        now.at = clock.readable_at(minute) + 0.1
        first[minute] = counts(store, minutes)[minute]
    now.at += 60.0  # every late sample has come
    revised = counts(store, minutes)
    assert all(revised[m] == 50 for m in minutes)
    assert all(0 < first[m] <= revised[m] for m in minutes)
    assert sum(first.values()) < sum(revised.values())  # some periods grew after a read


def test_an_alarm_judges_only_periods_every_delay_has_passed():
    clock = Clock(1.0, 60.0, publication_spread_s=60.0, seed=1)
    store, now = store_with(clock, 5, range(300, 301))
    alarm = SimpleNamespace(
        period=60,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        extended_statistic=None,
        statistic="Sum",
        metric_name="RequestCount",
        dimensions=[SimpleNamespace(name="LoadBalancer", value="app/lb/1")],
        comparison_operator="GreaterThanThreshold",
        threshold=0.0,
        treat_missing_data="notBreaching",
    )
    now.at = 301 * MINUTE + 119.0  # published or not, not yet past the longest delay
    assert evaluate_alarm(alarm, store, now.at).state == "OK"
    now.at = 301 * MINUTE + 121.0
    assert evaluate_alarm(alarm, store, now.at).state == "ALARM"
