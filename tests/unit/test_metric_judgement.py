"""The metric gate judges green against blue with one rule (deployer/core/gate_rule.jsonata),
on users' requests of settled minutes: FAIL on a significant regression beyond the margin,
PASS only on evidence of safety, CONTINUE otherwise. Pure scenarios and the golden corpus.
"""

import json
from datetime import UTC, datetime

import pytest

from deployer.core.durations import TimingInputs, predict, total_s
from deployer.core.gate_inputs import (
    Probes,
    looks_per_step,
    rule_input,
    settled,
    sign_critical,
    users_of,
    z_squared,
)
from deployer.core.metrics import (
    MetricPolicy,
    MetricWindow,
    Period,
    Verdict,
    evidence_wait_s,
    judgements,
)
from deployer.release.gate_rule import evaluate, rule_text
from tests.unit.gate_corpus import CORPUS, Borderline, reference

POLICY = MetricPolicy(min_periods=3, max_error_increase=0.5, significance=0.01)


def periods(n, requests, errors=0.0, latency=0.05, start=0.0):
    return [Period(start + 60 * i, requests, errors, latency) for i in range(n)]


def judged(green, blue, policy=POLICY, looks=7, final=False):
    inputs = rule_input(green, blue, policy, looks, final, policy.min_minute_requests)
    return evaluate(inputs), inputs


def test_a_canary_failing_half_its_requests_fails_on_its_first_minute():
    result, _ = judged(periods(1, 100, errors=50), periods(10, 1000, errors=1))
    assert result["verdict"] == "FAIL" and result["action"] == "rollback"


def test_two_percent_at_a_ten_percent_canary_of_20_requests_a_second_is_caught():
    result, _ = judged(periods(7, 120, errors=3), periods(10, 1080))
    assert result["verdict"] == "FAIL"


def test_the_same_rate_as_blue_is_never_a_failure_however_many_errors():
    result, _ = judged(periods(30, 100000, errors=1000), periods(10, 100000, errors=1000))
    assert result["verdict"] == "PASS"  # and with this much traffic, shown safe


def test_pass_needs_evidence_of_safety_not_merely_no_harm_found():
    quiet, _ = judged(periods(5, 20), periods(10, 200))  # 100 clean requests show little
    assert quiet["verdict"] == "CONTINUE" and quiet["errors"]["safe"] is False
    busy, _ = judged(periods(5, 4000), periods(10, 40000))
    assert busy["verdict"] == "PASS" and busy["errors"]["safe"] is True


def test_a_significant_but_tiny_increase_is_below_the_practical_margin():
    result, _ = judged(periods(10, 100000, errors=110), periods(10, 100000, errors=100))
    assert result["errors"]["verdict"] != "FAIL"


def test_pass_waits_for_min_periods_even_when_the_bound_is_met():
    result, _ = judged(periods(2, 50000), periods(10, 50000))
    assert result["errors"]["safe"] is True and result["verdict"] == "CONTINUE"


def test_with_no_blue_the_absolute_limit_applies_and_an_idle_blue_counts_as_none():
    assert judged(periods(3, 200, errors=40), None)[0]["verdict"] == "FAIL"
    assert judged(periods(3, 2000, errors=2), None)[0]["verdict"] == "PASS"
    result, _ = judged(periods(3, 200, errors=40), periods(10, 0))
    assert result["verdict"] == "FAIL" and result["errors"]["against"] == "limit"


def test_a_slower_green_fails_only_on_enough_minutes_by_ratio_and_floor():
    slow, _ = judged(periods(12, 100, latency=0.9), periods(12, 1000, latency=0.1))
    assert slow["verdict"] == "FAIL" and slow["latency"]["slower"] == 12
    few, _ = judged(periods(3, 100, latency=0.9), periods(3, 1000, latency=0.1))
    assert few["latency"]["verdict"] == "CONTINUE"  # three minutes cannot show it at alpha/K
    by_ratio_only, _ = judged(periods(12, 100, latency=0.002), periods(12, 1000, latency=0.001))
    assert by_ratio_only["latency"]["verdict"] == "PASS"  # +1 ms is slower for nobody


def test_at_the_deadline_continue_is_inconclusive_and_the_policy_decides():
    quiet = periods(3, 20), periods(10, 200)
    proceed, _ = judged(*quiet, final=True)
    assert (proceed["verdict"], proceed["action"], proceed["inconclusive"]) == (
        "CONTINUE",
        "proceed",
        True,
    )
    strict = MetricPolicy(on_inconclusive="rollback")
    rolled, _ = judged(*quiet, policy=strict, final=True)
    assert rolled["action"] == "rollback" and rolled["inconclusive"] is True
    assert judged(*quiet, final=False)[0]["action"] == "hold"


def test_deployers_own_checks_are_taken_off_greens_minutes():
    probes = Probes(60.0)
    for second in range(0, 60, 2):  # a check every 2 s, all of them failing
        probes.record(120.0 + second, 500)
    green = [Period(120.0, 40, 31, 0.01)]  # 30 of them deployer's: users 10, 1 error
    (users,) = users_of(green, probes)
    assert (users.requests, users.errors) == (10, 1)
    assert users.latency is None  # a minute mostly of probes says nothing of users' latency


def test_a_minutes_checks_are_found_by_a_start_read_back_from_a_timestamp():
    """The sandbox's minutes last 1.2 s: a start that went through GetMetricData's text is
    not always the float deployer computed, and its checks must still be taken off.
    """
    period_s = 1.2
    probes = Probes(period_s)
    first = 1_444_617_000
    for index in range(first, first + 200):
        probes.record(index * period_s + 0.5, 200)
    read_back = [
        datetime.fromisoformat(
            datetime.fromtimestamp(i * period_s, tz=UTC).isoformat(timespec="microseconds")
        ).timestamp()
        for i in range(first, first + 200)
    ]
    computed = [i * period_s for i in range(first, first + 200)]
    assert read_back != computed
    users = users_of([Period(start, 5, 0, 0.01) for start in read_back], probes)
    assert [u.requests for u in users] == [4] * 200


def test_only_settled_minutes_count():
    minutes = periods(5, 100, start=0.0)
    assert [p.start for p in settled(minutes, now=300.0, period_s=60, delay_s=120)] == [0, 60, 120]


def test_alpha_is_spent_over_the_steps_looks():
    assert looks_per_step(420, 60) == 7 and looks_per_step(10, 60) == 1
    assert z_squared(0.01 / 7) > z_squared(0.01)
    table = sign_critical(0.01)
    assert table[6] == -1 and table[7] == 7 and table[10] == 10 and table[11] == 10
    # 2^-7 < 1 %; 11/1024 > 1 % > 12/2048


def test_a_verdict_is_told_with_its_numbers():
    result, inputs = judged(periods(2, 240, errors=120), periods(10, 12000, errors=2))
    error_rate, latency = judgements(result, inputs, excluded=12)
    assert error_rate.verdict is Verdict.FAIL and "vs blue" in error_rate.detail
    assert "p=" in error_rate.detail and "12 of deployer's own checks" in error_rate.detail
    assert error_rate.evidence["green_requests"] == 480 and error_rate.evidence["p_value"] < 1e-9
    assert latency.metric == "latency"


def test_the_rule_uses_no_square_root_or_power():
    text = rule_text()
    assert "$sqrt" not in text and "$power" not in text and "$eval" not in text


def corpus():
    return json.loads(CORPUS.read_text())


def test_the_golden_corpus_covers_edges_and_draws_of_every_verdict():
    items = corpus()
    assert len(items) >= 200
    assert {i["expected"]["verdict"] for i in items} == {"PASS", "FAIL", "CONTINUE"}
    tests = {evaluate(i["input"])["errors"]["test"] for i in items}
    assert {"yates", "fisher", "score", "binomial"} <= tests


def test_the_rule_gives_every_verdict_of_the_golden_corpus():
    wrong = []
    for item in corpus():
        got = evaluate(item["input"])
        seen = {
            "verdict": got["verdict"],
            "errors": got["errors"]["verdict"],
            "latency": got["latency"]["verdict"],
            "action": got["action"],
        }
        if seen != item["expected"]:
            wrong.append((item["name"], seen, item["expected"]))
    assert wrong == []


def test_the_corpus_verdicts_are_those_of_an_independent_scipy_reference():
    pytest.importorskip("scipy")
    for item in corpus():
        try:
            assert reference(item["input"]) == item["expected"], item["name"]
        except Borderline:
            pytest.fail(f"{item['name']} sits on a threshold")


def test_a_step_window_starts_at_the_minute_that_holds_the_step_and_blue_looks_back():
    window = MetricWindow.for_step(started=1000.5, now=1100, period_s=60, baseline_s=600)
    assert window.green_since == 960 and window.blue_since == 360
    assert window.idle([]) and not window.idle(None) and not window.idle(periods(1, 3))


def test_the_evidence_wait_covers_the_minutes_and_their_settling():
    assert evidence_wait_s(MetricPolicy(min_periods=3)) == 3 * 60 + 2 * 120


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
    assert held["step 1: canary 10/100"].seconds == 3 * 60 + 120  # three minutes, settled
    assert "settled minutes" in held["step 1: canary 10/100"].why
    assert held["step 2: all traffic"].seconds == 600  # bake_seconds is longer
    assert held["bake"].seconds > held["fleet"].seconds
    assert total_s(rows) == sum(r.seconds for r in rows)
    no_metrics = predict(TimingInputs([], 0, False, 1, 10, [("step 1", 30)], 0, 60, None, 0))
    assert {r.what: r.seconds for r in no_metrics}["step 1"] == 180  # the alarm's minute + delay
