"""The metric gate judges green against blue: significance and a practical margin, volume and
blue's own errors accounted for; absolute limits when there is no blue. Pure scenarios.
"""

import pytest

from deployer.core.durations import TimingInputs, predict, total_s
from deployer.core.metrics import (
    MetricPolicy,
    MetricWindow,
    Period,
    Verdict,
    evidence_wait_s,
    judge_error_rate,
    judge_latency,
)

POLICY = MetricPolicy(min_periods=3, max_error_increase=0.5, significance=0.01)


def periods(n, requests, errors=0.0, latency=0.05, start=0.0):
    return [Period(start + 60 * i, requests, errors, latency) for i in range(n)]


def test_a_canary_failing_half_its_requests_fails_on_its_first_period():
    green = periods(1, 120, errors=60)
    blue = periods(10, 1080)
    judged = judge_error_rate(green, blue, POLICY)
    assert judged.verdict is Verdict.FAIL  # no need to wait for three minutes of proof
    assert judged.evidence["green_rate_pct"] == 50.0 and judged.evidence["blue_rate_pct"] == 0.0
    assert judged.evidence["p_value"] < 1e-20
    assert "vs blue 0.00%" in judged.detail


def test_five_percent_at_a_ten_percent_canary_is_caught():
    green = periods(3, 120, errors=6)
    blue = periods(10, 1080, errors=1)
    assert judge_error_rate(green, blue, POLICY).verdict is Verdict.FAIL


def test_the_same_rate_as_blue_is_no_regression_however_many_errors():
    green = periods(3, 10_000, errors=100)  # 1 %
    blue = periods(10, 10_000, errors=100)  # 1 % too
    assert judge_error_rate(green, blue, POLICY).verdict is Verdict.PASS


def test_five_errors_mean_little_in_a_huge_volume():
    green = periods(3, 100_000, errors=2)
    blue = periods(10, 100_000, errors=3)
    assert judge_error_rate(green, blue, POLICY).verdict is Verdict.PASS


def test_a_significant_but_tiny_increase_is_below_the_practical_margin():
    green = periods(3, 200_000, errors=1_000)  # 0.5 %
    blue = periods(10, 200_000, errors=400)  # 0.2 %: significant, but +0.3 points only
    judged = judge_error_rate(green, blue, POLICY)
    assert judged.evidence["p_value"] < 0.01 and judged.verdict is Verdict.PASS


def test_a_few_unlucky_requests_are_not_significant():
    green = [Period(0, 2, 1), Period(60, 2, 0), Period(120, 2, 0)]  # 1 of 6: 17 %, by chance?
    blue = periods(10, 20)  # 0 of 200
    assert judge_error_rate(green, blue, POLICY).verdict is Verdict.PASS


def test_until_min_periods_a_clean_canary_is_not_yet_judged():
    green = periods(2, 120)
    blue = periods(10, 1000)
    assert judge_error_rate(green, blue, POLICY).verdict is Verdict.INSUFFICIENT
    assert judge_error_rate([], blue, POLICY).verdict is Verdict.INSUFFICIENT


def test_with_no_blue_the_absolute_limit_applies():
    assert judge_error_rate(periods(3, 200, errors=40), None, POLICY).verdict is Verdict.FAIL
    assert judge_error_rate(periods(3, 200, errors=2), None, POLICY).verdict is Verdict.PASS
    silent_blue = periods(0, 0)
    judged = judge_error_rate(periods(3, 200, errors=40), silent_blue, POLICY)
    assert judged.verdict is Verdict.FAIL and "limit" in judged.detail


def test_a_slower_green_fails_only_when_significant_and_by_ratio_and_by_an_amount():
    blue = periods(10, 500, latency=0.100)
    slow = [Period(60 * i, 500, 0, 0.300 + 0.001 * i) for i in range(4)]
    judged = judge_latency(slow, blue, POLICY)
    assert judged.verdict is Verdict.FAIL and judged.evidence["ratio"] == pytest.approx(3, 0.05)
    a_bit = [Period(60 * i, 500, 0, 0.120 + 0.001 * i) for i in range(4)]
    assert judge_latency(a_bit, blue, POLICY).verdict is Verdict.PASS  # x1.2: within ratio
    fast_blue = periods(10, 500, latency=0.002)
    twice_as_slow = [Period(60 * i, 500, 0, 0.004 + 0.0001 * i) for i in range(4)]
    assert judge_latency(twice_as_slow, fast_blue, POLICY).verdict is Verdict.PASS  # +2 ms


def test_latency_needs_its_periods_and_uses_the_limit_without_blue():
    assert judge_latency(periods(2, 500), periods(10, 500), POLICY).verdict is Verdict.INSUFFICIENT
    assert judge_latency(periods(3, 50, latency=3.0), None, POLICY).verdict is Verdict.FAIL
    assert judge_latency(periods(3, 50, latency=0.2), None, POLICY).verdict is Verdict.PASS


def test_a_step_window_starts_at_the_minute_that_holds_the_step_and_blue_looks_back():
    window = MetricWindow.for_step(started=1000.5, now=1100, period_s=60, baseline_s=600)
    assert window.green_since == 960 and window.blue_since == 360
    assert window.idle([]) and not window.idle(None) and not window.idle(periods(1, 3))


def test_the_evidence_wait_covers_the_minutes_and_their_publication():
    assert evidence_wait_s(MetricPolicy(min_periods=3)) == 3 * 60 + 2 * 60


def test_plan_predicts_each_step_on_aws_clock():
    rows = predict(
        TimingInputs(
            stacks_to_create=["network", "service"],
            stacks_to_update=0,
            bakes=True,
            regions=2,
            health_interval_s=10,
            steps=[("step 1: canary 10/100", 60), ("step 2: all traffic", 600)],
            watch_s=0,
            alarm_window_s=60,
            metrics=MetricPolicy(min_periods=3),
            retires=1,
        )
    )
    held = {r.what: r for r in rows}
    assert held["step 1: canary 10/100"].seconds == 4 * 60  # three minutes, published
    assert "metrics" in held["step 1: canary 10/100"].why
    assert held["step 2: all traffic"].seconds == 600  # bake_seconds is longer
    assert held["bake"].seconds > held["fleet"].seconds
    assert total_s(rows) == sum(r.seconds for r in rows)
    no_metrics = predict(TimingInputs([], 0, False, 1, 10, [("step 1", 30)], 0, 60, None, 0))
    assert {r.what: r.seconds for r in no_metrics}["step 1"] == 120  # the alarm's minute + delay
