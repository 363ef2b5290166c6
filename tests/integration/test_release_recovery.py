"""Rollback to a retired fleet, gc, AWS outages and unhealthy rollback targets, on the sandbox."""

from __future__ import annotations

import time

import pytest

from deployer.errors import BadInput, ExitCode, NeedsHuman, Unreachable
from deployer.ops.operations import gc, status, unlock_scope
from deployer.ops.rollback import rollback
from deployer.release.loop import Release
from deployer.sandbox import client
from tests.integration.scenarios import (
    app_variant,
    break_fleet,
    engine_for,
    served,
    wait_unhealthy,
)

pytestmark = pytest.mark.integration


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
    assert engine_for(workdir, "outage-early").stacks.existing() is None


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
