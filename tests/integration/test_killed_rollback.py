"""A rollback killed halfway is in flight like a release: `deployer rollback` finishes it,
`deployer abort` puts traffic back, and the warm fleet it went to is never put aside.
"""

from __future__ import annotations

import pytest

from deployer.ops.operations import gc, status
from deployer.ops.rollback import abort, rollback
from deployer.release.loop import Release
from tests.integration.scenarios import engine_for, served

pytestmark = pytest.mark.integration


class Killed(BaseException):
    """The CI job's process dies here: nothing after this line runs."""


def killed_before_the_switch(engine):
    def die(record):
        if record.kind.value == "rollback" and record.phase.value == "switch":
            raise Killed

    engine.on_phase = die
    return engine


def killed_after_the_switch(engine):
    change = engine.traffic.set_weights

    def switch_then_die(listener_arn, weights):
        change(listener_arn, weights)
        raise Killed

    engine.traffic.set_weights = switch_then_die
    return engine


def released_twice(workdir, env):
    first = Release(engine_for(workdir, env)).run("v1")
    Release(engine_for(workdir, env)).run("v2")
    assert served(first.url) == {"hello from v2"}
    return first.url


def test_a_rollback_killed_before_its_listener_change_is_finished_by_the_next_rollback(workdir):
    url = released_twice(workdir, "rb-resume")
    with pytest.raises(Killed):
        rollback(killed_before_the_switch(engine_for(workdir, "rb-resume")), None, None)
    now = status(engine_for(workdir, "rb-resume"))
    assert now["in_flight"]["kind"] == "rollback" and now["in_flight"]["version"] == "v1"
    assert served(url) == {"hello from v2"}  # killed before it changed anything

    engine = engine_for(workdir, "rb-resume")
    result = rollback(engine, None, None)
    assert result.changed and result.record.version == "v1"
    assert result.record.release_id == now["in_flight"]["release_id"]  # the same rollback
    assert result.record.outcome.value == "succeeded"
    assert any("was interrupted at switch; finishing it" in line for line in engine.lines)
    assert served(url) == {"hello from v1"}
    assert status(engine_for(workdir, "rb-resume"))["in_flight"] is None
    again = rollback(engine_for(workdir, "rb-resume"), None, None)
    assert not again.changed  # a plain rollback is not undone by another one


def test_abort_puts_traffic_back_from_a_killed_rollback_and_keeps_its_fleet_warm(workdir):
    url = released_twice(workdir, "rb-abort")
    with pytest.raises(Killed):
        rollback(killed_after_the_switch(engine_for(workdir, "rb-abort")), None, None)
    assert served(url) == {"hello from v1"}  # the listener moved, the journal did not finish
    assert status(engine_for(workdir, "rb-abort"))["in_flight"]["kind"] == "rollback"

    aborted = abort(engine_for(workdir, "rb-abort"), None)
    assert aborted.changed and aborted.record.outcome.value == "failed"
    assert served(url) == {"hello from v2"}
    after = status(engine_for(workdir, "rb-abort"))
    assert after["in_flight"] is None
    v1 = next(f for f in after["fleets"] if f["version"] == "v1")
    assert v1["desired"] > 0  # still warm: the rollback made no fleet, so none is put aside
    assert gc(engine_for(workdir, "rb-abort"), None)["retired"] == []
    assert not abort(engine_for(workdir, "rb-abort"), None).changed  # nothing in flight now

    back = rollback(engine_for(workdir, "rb-abort"), None, None)
    assert back.changed and back.record.version == "v1"
    assert served(url) == {"hello from v1"}
