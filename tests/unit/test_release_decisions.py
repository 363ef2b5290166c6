"""Scenarios for the pure release and rollback decisions."""

import pytest

from deployer.core.decide import (
    NothingToRollBackTo,
    choose_rollback_target,
    fleets_to_retire,
    plan_release,
)
from deployer.core.model import Actor, Fleet, Kind, LiveState, Outcome, ReleaseRecord
from deployer.core.rollout import plan_steps, step_weights

ACTOR = Actor("ci", "runner-1")


def fleet(version, digest="d" * 64, desired=2, status="CREATE_COMPLETE"):
    return Fleet(
        stack_name=f"app-env-fleet-{version}",
        version=version,
        digest=digest,
        image_id=f"ami-{version}",
        release_id=f"r-{version}",
        stack_status=status,
        target_group_arn=f"tg/{version}",
        desired=desired,
    )


def released(version, when, outcome=Outcome.SUCCEEDED, kind=Kind.RELEASE):
    return ReleaseRecord(
        release_id=when,
        kind=kind,
        version=version,
        started_at=when,
        actor=ACTOR,
        outcome=outcome,
        fleet_stack=f"app-env-fleet-{version}",
    )


def live(*fleets, weights):
    return LiveState(tuple(fleets), weights).with_weights()


def test_first_release_uses_the_configured_capacity_and_has_no_blue():
    plan = plan_release(LiveState(), "v1", "d" * 64, "app-env-fleet-v1", configured_desired=3)
    assert not plan.noop
    assert plan.blue is None
    assert plan.capacity == 3


def test_green_is_sized_like_the_live_fleet_which_may_have_scaled():
    state = live(fleet("v1", desired=5), weights={"tg/v1": 100})
    plan = plan_release(state, "v2", "e" * 64, "app-env-fleet-v2", configured_desired=2)
    assert plan.capacity == 5
    assert plan.blue is not None and plan.blue.version == "v1"


def test_releasing_what_is_already_live_changes_nothing():
    state = live(fleet("v1"), weights={"tg/v1": 100})
    plan = plan_release(state, "v1", "d" * 64, "app-env-fleet-v1", configured_desired=2)
    assert plan.noop
    assert "already live" in plan.reason


def test_same_version_with_a_new_artifact_is_a_new_release():
    state = live(fleet("v1"), weights={"tg/v1": 100})
    plan = plan_release(state, "v1", "f" * 64, "app-env-fleet-v1-ffff", configured_desired=2)
    assert not plan.noop


def test_a_fleet_left_by_a_killed_run_is_reused_not_duplicated():
    state = live(fleet("v1"), fleet("v2"), weights={"tg/v1": 100})
    plan = plan_release(state, "v2", "d" * 64, "app-env-fleet-v2", configured_desired=2)
    assert plan.reuse_fleet is not None and plan.reuse_fleet.version == "v2"


def test_switch_sends_all_traffic_to_green_and_keeps_blue_registered_at_zero():
    [step] = plan_steps("all_at_once", (10, 50, 100), 0, has_blue=True)
    assert step_weights(step, "tg/v2", "tg/v1") == {"tg/v2": 100, "tg/v1": 0}
    assert step_weights(step, "tg/v2", None) == {"tg/v2": 100}


def test_everything_but_green_and_blue_is_retired():
    state = live(fleet("v1"), fleet("v2"), fleet("v3"), weights={"tg/v3": 100, "tg/v2": 0})
    retired = fleets_to_retire(state, keep=["app-env-fleet-v3", "app-env-fleet-v2"])
    assert [f.version for f in retired] == ["v1"]


def test_rollback_goes_to_the_release_before_the_live_one():
    state = live(fleet("v1"), fleet("v2"), weights={"tg/v2": 100, "tg/v1": 0})
    history = [released("v3", "3", Outcome.FAILED), released("v2", "2"), released("v1", "1")]
    assert choose_rollback_target(state, history, None).version == "v1"


def test_rollback_skips_fleets_that_were_retired():
    state = live(fleet("v1"), fleet("v3"), weights={"tg/v3": 100})
    history = [released("v3", "3"), released("v2", "2"), released("v1", "1")]
    assert choose_rollback_target(state, history, None).version == "v1"


def test_rollback_to_a_named_version_needs_it_warm():
    state = live(fleet("v1"), fleet("v2"), weights={"tg/v2": 100})
    assert choose_rollback_target(state, [], "v1").version == "v1"
    with pytest.raises(NothingToRollBackTo, match="no warm fleet runs v0"):
        choose_rollback_target(state, [], "v0")


def test_rollback_with_only_the_live_fleet_says_what_to_do():
    state = live(fleet("v1"), weights={"tg/v1": 100})
    with pytest.raises(NothingToRollBackTo, match="deployer release VERSION") as caught:
        choose_rollback_target(state, [released("v1", "1")], None)
    assert caught.value.exit_code == 2


def test_a_fleet_whose_stack_failed_is_never_a_rollback_target():
    state = live(fleet("v1", status="DELETE_FAILED"), fleet("v2"), weights={"tg/v2": 100})
    with pytest.raises(NothingToRollBackTo):
        choose_rollback_target(state, [released("v2", "2"), released("v1", "1")], None)
