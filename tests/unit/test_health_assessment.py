"""Target health becomes a gate observation; it fails closed."""

from deployer.core.health import (
    Member,
    assess_during_hold,
    assess_target_health,
    needed_healthy,
)
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


# ---- during a hold ----------------------------------------------------------------------


def member(i, lifecycle="InService", healthy=True, launched_at=0.0):
    return Member(f"i-{i}", lifecycle, healthy, launched_at)


def hold(states, members=None, now=1000.0, grace=300.0, capacity=2, desired=2, share=1.0):
    members = (
        {m.instance_id: m for m in members}
        if members is not None
        else {f"i-{n}": member(n) for n in range(len(states))}
    )
    return assess_during_hold(targets(*states), members, now, grace, capacity, desired, share)


def test_a_scale_out_target_still_initial_is_not_a_failure():
    seen = hold([H, H, INIT], desired=3)
    assert seen.passed and "i-2 (initial)" in seen.detail


def test_a_target_auto_scaling_is_replacing_is_not_a_failure():
    replaced = [member(0), member(1, healthy=False)]
    assert hold([H, U], replaced).passed
    leaving = [member(0), member(1, lifecycle="Terminating:Wait")]
    assert hold([H, U], leaving).passed


def test_a_new_instance_within_its_grace_period_is_not_a_failure_after_it_is():
    young = [member(0), member(1, launched_at=900.0)]
    assert hold([H, U], young, now=1000.0, grace=300.0).passed
    assert not hold([H, U], young, now=1300.0, grace=300.0).passed


def test_a_target_unhealthy_for_a_definite_reason_fails():
    seen = hold([H, U])
    assert not seen.passed and "ResponseCodeMismatch" in seen.detail


def test_fewer_healthy_targets_than_the_step_needs_fails():
    gone = hold([H], [member(0)], capacity=2, desired=2, share=1.0)
    assert not gone.passed and "1/2 healthy needed" in gone.detail
    assert hold([H], [member(0)], capacity=2, desired=2, share=0.1).passed  # a 10 % canary
    assert hold([H], [member(0)], capacity=2, desired=1, share=1.0).passed  # scaled in to 1


def test_when_auto_scaling_cannot_be_read_only_the_targets_own_state_counts():
    seen = assess_during_hold(targets(H, U), None, 1000.0, 300.0, 2, 2, 1.0)
    assert not seen.passed
    assert assess_during_hold(targets(H, H, INIT), None, 1000.0, 300.0, 2, 3, 1.0).passed


def test_the_step_needs_its_share_of_the_fleet_less_what_is_on_its_way():
    assert needed_healthy(capacity=4, desired_now=4, share=0.5, coming=0) == 2
    assert needed_healthy(capacity=4, desired_now=4, share=1.0, coming=1) == 3
    assert needed_healthy(capacity=4, desired_now=0, share=0.01, coming=5) == 1
