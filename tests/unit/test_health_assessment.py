"""Target health becomes a gate verdict; the gate fails closed."""

from deployer.core.health import Verdict, assess_target_health
from deployer.core.model import TargetHealth, TargetState

H, U, INIT = TargetState.HEALTHY, TargetState.UNHEALTHY, TargetState.INITIAL


def targets(*states):
    return [
        TargetHealth(f"i-{n}", s, "Target.ResponseCodeMismatch" if s is U else "")
        for n, s in enumerate(states)
    ]


def test_passes_when_every_expected_target_is_healthy():
    assert assess_target_health(targets(H, H), 2, False).verdict is Verdict.PASS


def test_waits_while_targets_register_then_fails_at_the_deadline():
    assert assess_target_health(targets(H, INIT), 2, False).verdict is Verdict.WAIT
    result = assess_target_health(targets(H, U), 2, True)
    assert result.verdict is Verdict.FAIL
    assert "1/2 healthy" in result.observation
    assert "i-1 unhealthy (Target.ResponseCodeMismatch)" in result.observation


def test_no_targets_never_passes():
    assert assess_target_health([], 0, False).verdict is Verdict.WAIT
    assert assess_target_health([], 2, True).verdict is Verdict.FAIL


def test_fewer_targets_than_expected_is_not_enough():
    assert assess_target_health(targets(H), 2, False).verdict is Verdict.WAIT
