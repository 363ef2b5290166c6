"""Scenarios for the pure release and rollback decisions."""

import pytest

from deployer.core.decide import (
    Identity,
    decide_rollback,
    failed_fleets,
    fleets_to_retire,
    plan_release,
)
from deployer.core.model import Actor, Fleet, Kind, LiveState, Outcome, ReleaseRecord
from deployer.core.rollout import plan_steps, step_weights
from deployer.errors import NothingToRollBackTo

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


def want(version, digest="d" * 64, bake_key="", settings=""):
    return Identity(version, digest, bake_key, settings)


def test_first_release_uses_the_configured_capacity_and_has_no_blue():
    plan = plan_release(LiveState(), want("v1"), configured_desired=3)
    assert not plan.noop
    assert plan.blue is None
    assert plan.capacity == 3


def test_green_is_sized_like_the_live_fleet_which_may_have_scaled():
    state = live(fleet("v1", desired=5), weights={"tg/v1": 100})
    plan = plan_release(state, want("v2", "e" * 64), configured_desired=2)
    assert plan.capacity == 5
    assert plan.blue is not None and plan.blue.version == "v1"


def test_releasing_what_is_already_live_changes_nothing():
    state = live(fleet("v1"), weights={"tg/v1": 100})
    plan = plan_release(state, want("v1"), configured_desired=2)
    assert plan.noop
    assert "already live" in plan.reason


def test_same_version_with_a_new_artifact_is_a_new_release():
    state = live(fleet("v1"), weights={"tg/v1": 100})
    plan = plan_release(state, want("v1", "f" * 64), configured_desired=2)
    assert not plan.noop and "the artifact changed" in plan.reason


def test_the_live_version_with_new_settings_or_image_inputs_is_a_new_release():
    state = live(fleet("v1"), weights={"tg/v1": 100})
    plan = plan_release(state, want("v1", settings="s2"), configured_desired=2)
    assert not plan.noop and "the settings changed" in plan.reason
    assert not plan_release(state, want("v1", bake_key="k2"), configured_desired=2).noop


def test_a_rebake_of_the_live_version_is_a_new_release():
    state = live(fleet("v1"), weights={"tg/v1": 100})
    assert not plan_release(state, want("v1"), configured_desired=2, force=True).noop


def test_a_fleet_left_by_a_killed_run_is_reused_not_duplicated():
    state = live(fleet("v1"), fleet("v2"), weights={"tg/v1": 100})
    plan = plan_release(state, want("v2"), configured_desired=2)
    assert plan.reuse_fleet is not None and plan.reuse_fleet.version == "v2"


def test_switch_sends_all_traffic_to_green_and_keeps_blue_registered_at_zero():
    [step] = plan_steps("all_at_once", (10, 50, 100), 0, has_blue=True)
    assert step_weights(step, "tg/v2", "tg/v1") == {"tg/v2": 100, "tg/v1": 0}
    assert step_weights(step, "tg/v2", None) == {"tg/v2": 100}


def test_everything_but_green_and_blue_is_retired():
    state = live(fleet("v1"), fleet("v2"), fleet("v3"), weights={"tg/v3": 100, "tg/v2": 0})
    retired = fleets_to_retire(state, keep=["app-env-fleet-v3", "app-env-fleet-v2"])
    assert [f.version for f in retired] == ["v1"]


def record(version, n, previous="", kind=Kind.RELEASE, outcome=Outcome.SUCCEEDED):
    """A journal entry: `version` made live at time `n`, replacing the fleet `previous`."""
    return ReleaseRecord(
        release_id=f"{n:03d}",
        kind=kind,
        version=version,
        started_at=str(n),
        actor=ACTOR,
        outcome=outcome,
        fleet_stack=f"app-env-fleet-{version}",
        previous_fleet=f"app-env-fleet-{previous}" if previous else "",
        images={"eu-west-1": f"ami-{version}"},
    )


def journal(*records):
    return list(reversed(records))  # newest first, as the journal reads


def test_rollback_goes_to_the_fleet_that_was_live_before_the_current_one():
    state = live(fleet("v1"), fleet("v2"), weights={"tg/v2": 100, "tg/v1": 0})
    history = journal(record("v1", 1), record("v2", 2, "v1"))
    decision = decide_rollback(state, history, None)
    assert decision.fleet is not None and decision.fleet.version == "v1"


def test_a_second_rollback_changes_nothing():
    """release v1, release v2, rollback (v1 live), rollback: v1 stays live."""
    state = live(fleet("v1"), fleet("v2"), weights={"tg/v1": 100, "tg/v2": 0})
    history = journal(
        record("v1", 1), record("v2", 2, "v1"), record("v1", 3, "v2", kind=Kind.ROLLBACK)
    )
    decision = decide_rollback(state, history, None)
    assert decision.noop and "v1 is live" in decision.reason
    assert decision.fleet is None and decision.record is None


def test_rollback_then_release_then_rollback_goes_back_again():
    """release v1, v2; rollback (v1); release v2 again (its warm fleet); rollback: v1."""
    state = live(fleet("v1"), fleet("v2"), weights={"tg/v2": 100, "tg/v1": 0})
    history = journal(
        record("v1", 1),
        record("v2", 2, "v1"),
        record("v1", 3, "v2", kind=Kind.ROLLBACK),
        record("v2", 4, "v1"),
    )
    decision = decide_rollback(state, history, None)
    assert decision.fleet is not None and decision.fleet.version == "v1"


def test_a_rolled_back_release_is_never_the_target_of_a_plain_rollback():
    """v1, v2, v3; rollback (to v2): a plain rollback does not go to v3, nor on to v1."""
    state = live(fleet("v2"), fleet("v3"), weights={"tg/v2": 100, "tg/v3": 0})
    history = journal(
        record("v1", 1),
        record("v2", 2, "v1"),
        record("v3", 3, "v2"),
        record("v2", 4, "v3", kind=Kind.ROLLBACK),
    )
    again = decide_rollback(state, history, None)
    assert again.noop and "Nothing was changed" in again.reason
    assert "(" not in again.reason.split("Nothing")[0]  # the release id reads as a rollback's


def test_rollback_to_the_live_version_changes_nothing_twice_over():
    state = live(fleet("v1"), fleet("v2"), weights={"tg/v1": 100, "tg/v2": 0})
    history = journal(record("v1", 1), record("v2", 2, "v1"), record("v1", 3, "v2", Kind.ROLLBACK))
    for _ in range(2):
        decision = decide_rollback(state, history, "v1")
        assert decision.noop and "v1 is live already" in decision.reason
        assert "nothing was changed" in decision.reason


def test_rollback_to_a_named_warm_version_switches_to_it():
    state = live(fleet("v1"), fleet("v2"), weights={"tg/v1": 100, "tg/v2": 0})
    history = journal(record("v1", 1), record("v2", 2, "v1"), record("v1", 3, "v2", Kind.ROLLBACK))
    decision = decide_rollback(state, history, "v2")
    assert decision.fleet is not None and decision.fleet.version == "v2"


def test_a_retired_previous_fleet_is_re_released_from_its_recorded_image():
    state = live(fleet("v2"), weights={"tg/v2": 100})
    history = journal(record("v1", 1), record("v2", 2, "v1"))
    decision = decide_rollback(state, history, None)
    assert decision.fleet is None and decision.record is not None
    assert decision.record.version == "v1" and decision.record.images["eu-west-1"] == "ami-v1"


def test_rollback_to_a_version_never_released_says_what_to_do():
    state = live(fleet("v1"), fleet("v2"), weights={"tg/v2": 100})
    with pytest.raises(NothingToRollBackTo, match="deployer release v0"):
        decide_rollback(state, journal(record("v1", 1), record("v2", 2, "v1")), "v0")


def test_rollback_with_only_the_first_release_live_says_what_to_do():
    state = live(fleet("v1"), weights={"tg/v1": 100})
    with pytest.raises(NothingToRollBackTo, match="first release") as caught:
        decide_rollback(state, journal(record("v1", 1)), None)
    assert caught.value.exit_code == 2


def test_a_fleet_whose_stack_failed_is_never_switched_to():
    state = live(fleet("v1", status="DELETE_FAILED"), fleet("v2"), weights={"tg/v2": 100})
    decision = decide_rollback(state, journal(record("v1", 1), record("v2", 2, "v1")), None)
    assert decision.fleet is None and decision.record is not None  # re-released instead


def test_fleets_failed_releases_put_aside_go_at_once_never_the_live_one_or_blue():
    """Two failed releases in a row: both cold fleets are failed ones, whatever the window."""
    live = LiveState(
        (fleet("v1"), fleet("v2", desired=0), fleet("v3", desired=0), fleet("v4")),
        {"tg/v1": 100},
    ).with_weights()
    history = [  # newest first
        released("v4", "t5", outcome=Outcome.IN_PROGRESS),
        released("v3", "t4", outcome=Outcome.FAILED),
        released("v2", "t3", outcome=Outcome.FAILED),
        released("v1", "t2"),
    ]
    doomed = failed_fleets(live, history, keep={"app-env-fleet-v4"})
    assert [f.version for f in doomed] == ["v2", "v3"]
    # A fleet whose newest record succeeded (re-released after a failure) stays.
    again = [released("v2", "t6"), *history]
    assert [f.version for f in failed_fleets(live, again, keep=set())] == ["v3"]
