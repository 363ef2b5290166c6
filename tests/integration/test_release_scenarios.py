"""Release scenarios on the sandbox, in process: canary failure, flapping, and the switch back
to blue failing transiently (absorbed) or for good (exit 4, the journal says what to do).
Faults are injected at the adapter edge of a real engine; AWS is the sandbox.
"""

from __future__ import annotations

import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from deployer.aws.poller import Poll, Poller
from deployer.config import load_config
from deployer.engine import Engine
from deployer.errors import BadInput, ExitCode, GateFailed, NeedsHuman, Unreachable
from deployer.operations import gc, status, unlock_scope
from deployer.release import Release
from deployer.rollback import rollback
from deployer.sandbox import client, control
from deployer.sandbox.layout import Layout
from deployer.target import open_target
from tests.conftest import copy_project

pytestmark = pytest.mark.integration

CONFIG = """\
app: shop
environment: {env}
artifact: {{source: {source}}}
capacity: {{min: 1, desired: 2, max: 4}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 20}}
strategy: {{kind: {kind}, steps: [10, 50, 100], bake_seconds: {bake}, watch_seconds: {watch}}}
rollback_window: {window}
gates:
  http: [{{path: /healthz, expect_status: 200}}]
  alarms: {alarms}
  max_failures: {max_failures}
  interval_seconds: 0.5
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("scenarios")
    copy_project(workdir)
    yield workdir
    control.down(Layout.for_workdir(workdir))


def app_variant(workdir, name, **files):
    target = workdir / name
    if not target.exists():
        shutil.copytree(workdir / "app", target)
        for file_name, value in files.items():
            (target / file_name).write_text(value)
    return name


def engine_for(
    workdir,
    env,
    source="app",
    kind="all_at_once",
    bake=1,
    max_failures=0,
    window=3600,
    alarms="[]",
    watch=0,
):
    path = workdir / f"{env}-{source}.yaml"
    path.write_text(
        CONFIG.format(
            env=env,
            source=source,
            kind=kind,
            bake=bake,
            window=window,
            alarms=alarms,
            max_failures=max_failures,
            watch=watch,
        )
    )
    loaded = load_config(path)
    lines: list[str] = []
    poller = Poller(report=lines.append, first_interval=0.1, max_interval=0.5)
    runtime = open_target(loaded, workdir, poller, lines.append)
    engine = Engine(loaded, runtime, poller, lines.append, workdir)
    engine.lines = lines  # type: ignore[attr-defined]
    return engine


def served(url, n=10):
    return {urllib.request.urlopen(url, timeout=5).read().decode().strip() for _ in range(n)}


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
    assert fleets == {"v1": ("live", 100, 2), "v2": ("cold", 0, 0)}
    assert now["last"]["outcome"] == "failed" and "step" in now["last"]["reason"]


def test_a_flapping_green_is_rejected_when_failures_exceed_the_tolerance(workdir):
    Release(engine_for(workdir, "flap")).run("v1")
    flappy = app_variant(workdir, "app-flap", FLAP="4")
    engine = engine_for(workdir, "flap", source=flappy, bake=8, max_failures=2)
    with pytest.raises(GateFailed) as caught:
        Release(engine).run("v2")
    assert "500" in caught.value.observation
    assert status(engine_for(workdir, "flap"))["live_version"] == "v1"


def failing_restores(engine, blue_group, errors):
    """Make the listener change that sends traffic back to blue alone raise `errors`."""
    original = engine.elb.set_weights

    def set_weights(listener_arn, weights):
        if set(weights) == {blue_group} and errors:
            raise errors.pop(0)
        return original(listener_arn, weights)

    engine.elb.set_weights = set_weights


def throttled():
    return ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "ModifyListener",
    )


def denied():
    return ClientError(
        {
            "Error": {"Code": "AccessDenied", "Message": "not allowed"},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        },
        "ModifyListener",
    )


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
    assert engine.existing_infra() is None


def test_rollback_to_a_retired_fleet_re_releases_its_recorded_image(workdir):
    first = Release(engine_for(workdir, "retired", window=0)).run("v1")
    Release(engine_for(workdir, "retired", window=0)).run("v2")
    now = status(engine_for(workdir, "retired", window=0))
    assert [f["version"] for f in now["fleets"]] == ["v2"]  # window 0: v1 retired at once
    engine = engine_for(workdir, "retired", window=0)
    record = rollback(engine, None, None).record
    assert record.version == "v1" and record.kind.value == "rollback"
    assert record.images == first.record.images  # the same image: no bake
    assert record.image_reused and not any("bake: builder" in line for line in engine.lines)
    assert any("re-releasing it from its recorded image" in line for line in engine.lines)
    assert served(first.url) == {"hello from v1"}


def test_gc_retires_the_previous_fleet_after_the_rollback_window(workdir):
    Release(engine_for(workdir, "gc", window=2)).run("v1")
    Release(engine_for(workdir, "gc", window=2)).run("v2")
    assert gc(engine_for(workdir, "gc", window=3600), None)["retired"] == []  # in the window
    time.sleep(2.5)
    planned = gc(engine_for(workdir, "gc", window=2), None, dry_run=True)
    assert len(planned["retired"]) == 1 and "-v1-" in planned["retired"][0]
    retired = gc(engine_for(workdir, "gc", window=2), None)["retired"]
    assert retired == planned["retired"]
    assert [f["version"] for f in status(engine_for(workdir, "gc"))["fleets"]] == ["v2"]


def test_an_aws_outage_after_changes_began_needs_a_human_and_a_rerun_converges(
    workdir, monkeypatch
):
    """AWS stops answering once the fleet stack is being created. deployer retries (here twice,
    and rides out 1 s of silence in waits), then stops with exit 4 saying where; once AWS
    answers again, the same release converges.
    """
    first = Release(engine_for(workdir, "outage")).run("v1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    engine = engine_for(workdir, "outage", source=app_variant(workdir, "app-v2", NOTE="2"))
    engine.poller.patience_s = 1.0
    endpoint = engine.runtime.aws.endpoint_url

    def outage_once_the_fleet_starts(record):
        if record.phase.value == "fleet" and not record.phase_done:
            client.outage(endpoint, seconds=8)
            time.sleep(0.7)  # the port is closed now

    engine.on_phase = outage_once_the_fleet_starts
    with pytest.raises(NeedsHuman) as caught:
        Release(engine).run("v2")
    assert caught.value.exit_code == ExitCode.NEEDS_HUMAN
    assert "deployer release v2" in caught.value.message
    time.sleep(8)
    monkeypatch.delenv("AWS_MAX_ATTEMPTS")
    assert served(first.url) == {"hello from v1"}
    rerun = engine_for(workdir, "outage", source="app-v2")
    # The lock could not be released during the outage; a CLI rerun (a new process on this
    # host) takes it over at once, this test's process is still alive, so it unlocks by id.
    held = rerun.lock.lock.current()
    assert held is not None
    unlock_scope(rerun, held.lock_id)
    Release(rerun).run("v2")
    assert served(first.url) == {"hello from v2"}


def test_an_aws_outage_before_any_change_is_exit_5_and_changes_nothing(workdir):
    engine = engine_for(workdir, "outage-early")
    client.outage(engine.runtime.aws.endpoint_url, seconds=20)
    time.sleep(0.7)
    try:
        with pytest.raises(Unreachable) as caught:
            Release(engine).run("v1")
    finally:
        time.sleep(20)  # the other tests share this sandbox
    assert caught.value.exit_code == ExitCode.UNREACHABLE
    assert engine_for(workdir, "outage-early").existing_infra() is None


def break_fleet(engine, version):
    """Make every instance of `version`'s fleet answer its health check with 500."""
    layout = Layout.for_workdir(engine.workdir)
    infra = engine.existing_infra()
    fleet = next(f for f in engine.observe(infra).fleets if f.version == version)
    for instance in engine.asg.describe(fleet.asg_name).instance_ids:
        host = control.host_of(layout, instance)
        (Path(host["root"]) / "opt/app/current/BROKEN").write_text("1")
    return fleet


def wait_unhealthy(engine, fleet):
    def check():
        states = {t.state.value for t in engine.elb.target_health(fleet.target_group_arn)}
        return Poll(states == {"unhealthy"}, str(states))

    Poller(first_interval=0.1, max_interval=0.5).until("unhealthy", check, 30)


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


def test_an_unhealthy_fleet_is_not_a_rollback_target_without_force_and_status_says_so(workdir):
    first = Release(engine_for(workdir, "sick")).run("v1")
    Release(engine_for(workdir, "sick", source=app_variant(workdir, "app-s2", NOTE="s2"))).run("v2")
    engine = engine_for(workdir, "sick")
    wait_unhealthy(engine, break_fleet(engine, "v1"))
    with pytest.raises(BadInput, match="not healthy") as caught:
        rollback(engine, None, None)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert served(first.url) == {"hello from v2"}  # nothing changed
    roles = {f["version"]: f["role"] for f in status(engine)["fleets"]}
    assert roles == {"v2": "live", "v1": "sick"}

    wait_unhealthy(engine, break_fleet(engine, "v2"))
    assert any("v2 is not healthy" in w for w in status(engine)["warnings"])
    forced = rollback(engine_for(workdir, "sick"), None, None, force=True)
    assert forced.changed and forced.record.version == "v1"
