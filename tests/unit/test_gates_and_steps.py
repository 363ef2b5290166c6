"""Gate judgement and traffic steps: pure scenarios."""

import pytest

from deployer.config.strategy import Strategy
from deployer.core.gates import GateKind, Observation, judge
from deployer.core.rollout import plan_steps, restore_weights, step_weights


def http(passed, detail="status 200"):
    return Observation(GateKind.HTTP, "GET /healthz", passed, detail)


def alarm(passed):
    return Observation(GateKind.ALARM, "web-5xx", passed, "ALARM: threshold crossed")


def test_every_gate_passing_passes():
    verdict = judge([http(True), alarm(True)], {}, max_failures=0)
    assert verdict.passed


def test_an_alarm_in_alarm_fails_and_is_named():
    verdict = judge([http(True), alarm(False)], {}, max_failures=0)
    assert verdict.failed is not None
    assert verdict.failed.gate == "alarm web-5xx"


def test_an_unreadable_probe_counts_as_failing():
    verdict = judge([http(None, "unreadable: connection refused")], {}, max_failures=0)
    assert verdict.failed is not None and "connection refused" in verdict.failed.detail


def test_failures_within_the_tolerance_carry_over_and_the_next_one_fails():
    first = judge([http(False, "status 500")], {}, max_failures=1)
    assert first.passed and first.failures == {"http GET /healthz": 1}
    second = judge([http(True)], first.failures, max_failures=1)
    assert second.passed
    third = judge([http(False, "status 500")], second.failures, max_failures=1)
    assert third.failed is not None  # flapping: the failures add up within a step


def test_canary_steps_split_traffic_and_blue_takes_the_rest():
    steps = plan_steps("canary", (10, 50, 100), 30, has_blue=True)
    assert [(s.green_weight, s.blue_weight) for s in steps] == [(10, 90), (50, 50), (100, 0)]
    assert all(s.hold_seconds == 30 for s in steps)
    assert steps[0].name == "step 1: canary 10/100" and steps[-1].name == "step 3: all traffic"
    assert step_weights(steps[0], "green", "blue") == {"green": 10, "blue": 90}


def test_all_at_once_and_first_releases_are_a_single_step():
    assert len(plan_steps("all_at_once", (10, 50, 100), 5, has_blue=True)) == 1
    only = plan_steps("canary", (10, 50, 100), 5, has_blue=False)
    assert [(s.green_weight, s.blue_weight) for s in only] == [(100, 0)]


def test_weights_use_the_elbv2_range():
    steps = plan_steps("canary", (1, 100, 999), 0, has_blue=True)
    assert [(s.green_weight, s.blue_weight) for s in steps] == [(1, 998), (100, 899), (999, 0)]


@pytest.mark.parametrize("steps", [(10, 1000), (50, 10), (0,), (), (10, 10, 100), (-1, 100)])
def test_bad_canary_steps_are_rejected(steps):
    with pytest.raises(ValueError):
        Strategy(kind="canary", steps=steps)


def test_restoring_drops_green_and_keeps_what_was_there():
    assert restore_weights({"blue": 100, "old": 0}, "green") == {"blue": 100, "old": 0}
    assert restore_weights({}, "green") == {}


def test_an_http_failure_says_greens_error_rate_even_before_a_minute_settled():
    from deployer.core.gates import GateKind, Observation
    from deployer.release.gating import with_error_rate

    failed = Observation(GateKind.HTTP, "GET /", False, "500 on 3 of 3 checks")
    idle = Observation(GateKind.METRIC, "error rate", True, "", "continue", {"idle": True})
    said = with_error_rate(failed, [failed, idle])
    assert said.detail == (
        "500 on 3 of 3 checks (error rate: no users' requests to green in a settled minute yet)"
    )
    rate = Observation(
        GateKind.METRIC, "error rate", True, "2.0% vs 0.1%", "continue", {"green_requests": 90}
    )
    assert with_error_rate(failed, [failed, rate]).detail == (
        "500 on 3 of 3 checks (error rate: 2.0% vs 0.1%)"
    )
    assert with_error_rate(failed, [failed]) == failed  # no metric gate: nothing to add
