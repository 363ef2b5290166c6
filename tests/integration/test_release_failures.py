"""Releases that fail under traffic or before it, on the sandbox: traffic goes back to blue
every time, and the failure is named."""

from __future__ import annotations

import pytest

from deployer.aws.poller import Poll, Poller
from deployer.errors import BadInput, ExitCode, GateFailed, NeedsHuman
from deployer.ops.operations import gc, status
from deployer.release.loop import Release
from tests.integration.scenarios import (
    app_variant,
    break_fleet,
    denied,
    engine_for,
    failing_restores,
    served,
    throttled,
)

pytestmark = pytest.mark.integration


def test_green_failing_during_a_canary_step_goes_back_to_blue(workdir):
    first = Release(engine_for(workdir, "canary")).run("v1")
    url = first.url
    late = app_variant(workdir, "app-late", FAIL_AFTER="6")
    engine = engine_for(workdir, "canary", source=late, kind="canary", bake=5)
    with pytest.raises(GateFailed) as caught:
        Release(engine).run("v2")
    assert caught.value.exit_code == ExitCode.RELEASE_FAILED
    assert caught.value.step.startswith("step ")  # it failed under traffic, not before
    assert "500" in caught.value.observation  # the health check (or the target health) failed
    assert any("traffic: step 1: canary 10/100" in line for line in engine.lines)
    assert served(url) == {"hello from v1"}
    now = status(engine_for(workdir, "canary"))
    fleets = {f["version"]: (f["role"], f["weight"], f["desired"]) for f in now["fleets"]}
    assert fleets == {"v1": ("live", 100, 1), "v2": ("cold", 0, 0)}
    assert now["last"]["outcome"] == "failed" and "step" in now["last"]["reason"]
    # The journal keeps the weights the failing step had set, not an earlier step's.
    set_by = {"step 1": [10, 90], "step 2": [50, 50], "step 3": [0, 100]}
    assert sorted(now["last"]["weights"].values()) == set_by[caught.value.step[:6]]


def test_a_flapping_green_is_rejected_when_failures_exceed_the_tolerance(workdir):
    Release(engine_for(workdir, "flap")).run("v1")
    flappy = app_variant(workdir, "app-flap", FLAP="4")
    # A long hold: under load a round of gates takes seconds, and the flaps must be seen.
    engine = engine_for(workdir, "flap", source=flappy, bake=40, max_failures=2)
    with pytest.raises(GateFailed) as caught:
        Release(engine).run("v2")
    assert "500" in caught.value.observation
    assert status(engine_for(workdir, "flap"))["live_version"] == "v1"


def test_a_transient_failure_of_the_switch_back_is_absorbed(workdir):
    first = Release(engine_for(workdir, "transient")).run("v1")
    late = app_variant(workdir, "app-late", FAIL_AFTER="6")
    engine = engine_for(workdir, "transient", source=late, bake=8)
    failing_restores(engine, first.record.target_group_arn, [throttled(), throttled()])
    with pytest.raises(GateFailed):
        Release(engine).run("v2")
    assert served(first.url) == {"hello from v1"}


def test_a_permanent_failure_of_the_switch_back_needs_a_human(workdir):
    first = Release(engine_for(workdir, "stuck")).run("v1")
    late = app_variant(workdir, "app-late", FAIL_AFTER="6")
    engine = engine_for(workdir, "stuck", source=late, bake=8)
    failing_restores(engine, first.record.target_group_arn, [denied() for _ in range(10)])
    with pytest.raises(NeedsHuman) as caught:
        Release(engine).run("v2")
    assert caught.value.exit_code == ExitCode.NEEDS_HUMAN
    assert "deployer abort" in caught.value.message
    now = status(engine_for(workdir, "stuck"))
    assert now["last"]["reason"].startswith("needs a human")
    assert "deployer rollback" in now["advice"] or "deployer abort" in now["advice"]


def test_an_alarm_firing_during_the_bake_time_sends_traffic_back(workdir):
    first = Release(engine_for(workdir, "alarm")).run("v1")
    engine = engine_for(workdir, "alarm", bake=6, alarms="[shop-5xx]")
    cloudwatch = engine.runtime.aws.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="shop-5xx",
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=10,
        ComparisonOperator="GreaterThanThreshold",
    )

    def fire_once_green_has_traffic(record):
        if record.phase.value == "step" and record.weights:  # journalled as traffic moves
            cloudwatch.set_alarm_state(
                AlarmName="shop-5xx", StateValue="ALARM", StateReason="5xx above 10 per minute"
            )

    engine.on_phase = fire_once_green_has_traffic
    with pytest.raises(GateFailed) as caught:
        Release(engine).run("v2")
    assert caught.value.gate == "alarm shop-5xx"
    assert "5xx above 10 per minute" in caught.value.observation
    assert served(first.url) == {"hello from v1"}


def test_a_gate_alarm_that_does_not_exist_is_bad_input_before_any_change(workdir):
    engine = engine_for(workdir, "noalarm", alarms="[no-such-alarm]")
    with pytest.raises(BadInput, match="no CloudWatch alarm named no-such-alarm"):
        Release(engine).run("v1")
    assert engine.stacks.existing() is None


def test_a_failure_during_the_watch_after_the_switch_sends_traffic_back(workdir):
    first = Release(engine_for(workdir, "watch")).run("v1")
    engine = engine_for(
        workdir, "watch", source=app_variant(workdir, "app-w2", NOTE="w2"), watch=20
    )

    def break_once_watched(record):
        if record.phase.value == "watch" and not record.phase_done:
            break_fleet(engine, "v2")

    engine.on_phase = break_once_watched
    with pytest.raises(GateFailed) as caught:
        Release(engine).run("v2")
    assert caught.value.step.startswith("watch")
    assert served(first.url) == {"hello from v1"}


def test_failed_fleets_never_pile_up_and_gc_takes_the_last_at_once(workdir):
    """Two failed releases in a row used to leave two cold fleets, which gc kept for the
    whole rollback window. The second release deletes the first one's; gc the second's.
    """
    Release(engine_for(workdir, "piles")).run("v1")
    late = app_variant(workdir, "app-late", FAIL_AFTER="6")
    for version in ("v2", "v3"):
        with pytest.raises(GateFailed):
            Release(engine_for(workdir, "piles", source=late, bake=8)).run(version)

    def cold_versions():
        fleets = status(engine_for(workdir, "piles"))["fleets"]
        return sorted(f["version"] for f in fleets if f["role"] != "live")

    Poller(first_interval=0.2, max_interval=1).until(
        "v2's fleet to go", lambda: Poll(cold_versions() == ["v3"], str(cold_versions())), 60
    )
    engine = engine_for(workdir, "piles")
    planned = gc(engine, None, dry_run=True)
    assert [name.split("-fleet-")[1].split("-")[0] for name in planned["retired"]] == ["v3"]
    gc(engine_for(workdir, "piles"), None)
    assert cold_versions() == []
    assert status(engine_for(workdir, "piles"))["live_version"] == "v1"
