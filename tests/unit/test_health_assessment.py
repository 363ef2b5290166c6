"""Target health becomes a gate observation; it fails closed."""

from deployer.core.health import assess_target_health
from deployer.core.model import TargetHealth, TargetState

H, U, INIT = TargetState.HEALTHY, TargetState.UNHEALTHY, TargetState.INITIAL


def targets(*states):
    return [
        TargetHealth(f"i-{n}", s, "Target.ResponseCodeMismatch" if s is U else "")
        for n, s in enumerate(states)
    ]


def test_passes_when_every_expected_target_is_healthy():
    assert assess_target_health(targets(H, H), 2).passed


def test_a_registering_or_unhealthy_target_is_not_a_pass_and_is_named():
    assert not assess_target_health(targets(H, INIT), 2).passed
    result = assess_target_health(targets(H, U), 2)
    assert not result.passed
    assert "1/2 healthy" in result.detail
    assert "i-1 unhealthy (Target.ResponseCodeMismatch)" in result.detail


def test_no_targets_never_passes():
    assert not assess_target_health([], 0).passed
    assert not assess_target_health([], 2).passed


def test_fewer_targets_than_expected_is_not_enough():
    assert not assess_target_health(targets(H), 2).passed
