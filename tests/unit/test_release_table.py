"""The release as a table of steps, and where a run starts in it: pure scenarios."""

from dataclasses import replace

from deployer.core.health import plainly_broken
from deployer.core.model import Actor, Kind, Outcome, Phase, ReleaseRecord, TargetHealth
from deployer.core.model import TargetState as S
from deployer.core.steps import release_table, remaining, table_digest

NEW = ReleaseRecord("r1", Kind.RELEASE, "v2", "t0", Actor("ci", "host"), phase=Phase.BAKE)


def canary():
    return release_table("canary", (10, 50, 100), 30, watch_s=60, has_blue=True)


def names(steps):
    return [s.name for s in steps]


def test_a_canary_release_is_bake_fleet_gate_three_steps_watch_and_retire():
    assert names(canary()) == [
        "bake",
        "fleet",
        "gate",
        "step 1: canary 10/100",
        "step 2: canary 50/100",
        "step 3: all traffic",
        "watch for 60s",
        "retire",
    ]


def test_a_first_release_has_one_traffic_step_and_no_watch_when_none_is_asked():
    table = release_table("canary", (10, 50, 100), 30, watch_s=0, has_blue=False)
    assert names(table) == ["bake", "fleet", "gate", "step 1: all traffic", "retire"]


def test_a_new_release_runs_the_whole_table():
    assert remaining(canary(), NEW) == canary()


def test_a_run_killed_during_the_fleet_resumes_at_the_fleet():
    killed = replace(NEW, phase=Phase.FLEET, phase_done=False)
    assert names(remaining(canary(), killed))[0] == "fleet"


def test_a_run_killed_after_the_gate_completed_resumes_at_the_first_step():
    killed = replace(NEW, phase=Phase.GATE, phase_done=True)
    assert names(remaining(canary(), killed))[0] == "step 1: canary 10/100"


def test_a_run_killed_while_traffic_moved_starts_again_at_the_gate():
    for phase in (Phase.STEP, Phase.WATCH, Phase.ROLLBACK):
        killed = replace(NEW, phase=phase, step=1, phase_done=True)
        assert names(remaining(canary(), killed))[0] == "gate"


def test_a_run_killed_while_retiring_retires_again():
    killed = replace(NEW, phase=Phase.RETIRE, phase_done=False)
    assert names(remaining(canary(), killed)) == ["retire"]


def test_a_finished_release_has_nothing_left():
    assert remaining(canary(), replace(NEW, outcome=Outcome.SUCCEEDED)) == []
    assert remaining(canary(), replace(NEW, phase=Phase.DONE)) == []


def target(state, reason=""):
    return TargetHealth("i-1", state, reason)


MISMATCH = "Target.ResponseCodeMismatch: Health checks failed with these codes: [500]"


def test_a_fleet_whose_every_target_answers_the_wrong_code_is_plainly_broken():
    targets = [
        target(S.UNHEALTHY, MISMATCH),
        replace(target(S.UNHEALTHY, MISMATCH), target_id="i-2"),
    ]
    assert "every target fails its health check" in plainly_broken(targets, expected=2)


def test_a_fleet_still_booting_or_partly_healthy_is_not_plainly_broken():
    timeout = "Target.Timeout: Request timed out"
    assert plainly_broken([target(S.UNHEALTHY, timeout)], expected=1) == ""
    assert plainly_broken([target(S.INITIAL, "Elb.InitialHealthChecking")], expected=1) == ""
    mixed = [target(S.UNHEALTHY, MISMATCH), replace(target(S.HEALTHY), target_id="i-2")]
    assert plainly_broken(mixed, expected=2) == ""
    assert plainly_broken([target(S.UNHEALTHY, MISMATCH)], expected=2) == ""  # one is missing


def test_a_record_names_its_table_so_a_changed_strategy_is_not_resumed_on_another():
    canary = release_table("canary", [10, 50, 100], 60, 0, has_blue=True)
    assert table_digest(canary) == table_digest(release_table("canary", [10, 50, 100], 60, 0, True))
    changed = [
        release_table("canary", [10, 100], 60, 0, has_blue=True),  # a step fewer
        release_table("canary", [20, 50, 100], 60, 0, has_blue=True),  # other weights
        release_table("canary", [10, 50, 100], 30, 0, has_blue=True),  # shorter holds
        release_table("canary", [10, 50, 100], 60, 300, has_blue=True),  # a watch added
        release_table("all_at_once", [10, 50, 100], 60, 0, has_blue=True),
    ]
    assert len({table_digest(canary), *(table_digest(t) for t in changed)}) == 6


def test_a_pause_follows_the_step_whose_traffic_it_holds():
    table = release_table("canary", (10, 50, 100), 30, 0, True, pauses_after={0}, pause_s=600)
    rows = [(s.phase, s.name) for s in table if s.phase in (Phase.STEP, Phase.PAUSE)]
    assert rows == [
        (Phase.STEP, "step 1: canary 10/100"),
        (Phase.PAUSE, "pause after step 1"),
        (Phase.STEP, "step 2: canary 50/100"),
        (Phase.STEP, "step 3: all traffic"),
    ]
    paused = next(s for s in table if s.phase is Phase.PAUSE)
    assert (paused.index, paused.hold_seconds) == (0, 600)
    plain = release_table("canary", (10, 50, 100), 30, 0, True)
    assert table_digest(table) != table_digest(plain)  # a release resumes on its own table
    # A first release is one step: nothing to pause.
    first = release_table("canary", (10, 50, 100), 30, 0, False, pauses_after={0})
    assert not [s for s in first if s.phase is Phase.PAUSE]


def test_a_run_killed_in_a_pause_starts_again_at_the_gate():
    table = release_table("canary", (10, 50, 100), 30, 0, True, pauses_after={0})
    record = replace(NEW, phase=Phase.PAUSE, step=0)
    assert remaining(table, record)[0].phase is Phase.GATE
