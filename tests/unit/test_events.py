"""The event stream and what is drawn from it: the schema that pins it, the CI log lines, the
live view, the step summary."""

from __future__ import annotations

import io
import json

import jsonschema
import pytest
from rich.console import Console

from deployer.output.events import TYPES, Events
from deployer.output.live import LiveProgress, PlainProgress, end_table
from deployer.output.summary import markdown, phase_rows
from tests.conftest import REPO

SCHEMA = json.loads((REPO / "deployer" / "output" / "events.schema.json").read_text())


def a_failed_canary() -> Events:
    events = Events("run-1", clock=iter(range(1_800_000_000, 1_800_000_100)).__next__)
    emit = events.emit
    emit(
        "run_started",
        command="release",
        version="v2",
        actor="ci@runner",
        app="hello",
        environment="prod",
        target="aws eu-west-1",
        config="deployer.yaml",
        config_digest="a" * 64,
    )
    emit("release", release_id="r-2", kind="release", version="v2", prior_weights={"v1": 100})
    emit("phase_started", phase="step", name="step 1: canary 10/100")
    emit("weights_changed", listener="production", weights={"v2": 10, "v1": 90})
    emit(
        "gate_observation",
        gate="http GET /",
        kind="http",
        passed=True,
        detail="200",
        step="step 1: canary 10/100",
        version="v2",
    )
    emit(
        "gate_observation",
        gate="alarm errors|5xx",
        kind="alarm",
        passed=False,
        detail="ALARM",
        step="step 1: canary 10/100",
        version="v2",
    )
    emit(
        "phase_finished",
        phase="step",
        name="step 1: canary 10/100",
        seconds=4.0,
        cpu_s=0.2,
        outcome="failed",
    )
    emit("phase_started", phase="rollback", name="traffic back")
    emit("weights_changed", listener="production", weights={"v1": 100})
    emit(
        "phase_finished",
        phase="rollback",
        name="traffic back",
        seconds=0.4,
        cpu_s=0.0,
        outcome="done",
    )
    emit(
        "outcome",
        ok=False,
        exit_code=1,
        outcome="failed, rolled back",
        version="v2",
        release_id="r-2",
        url=None,
        reason="gate 'alarm errors' failed",
    )
    return events


def test_every_event_type_is_in_the_schema_with_the_same_fields():
    defined = SCHEMA["$defs"]
    for kind, fields in TYPES.items():
        assert set(defined[kind]["required"]) == {"ts", "type", "run", *fields}, kind
    refs = {ref["$ref"].rsplit("/", 1)[-1] for ref in SCHEMA["oneOf"]}
    assert refs == set(TYPES)


def test_the_events_of_a_run_validate_and_unknown_fields_do_not():
    for event in a_failed_canary().history:
        jsonschema.validate(event, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**a_failed_canary().history[-1], "secret": "x"}, SCHEMA)
    with pytest.raises(ValueError):
        Events().emit("made_up")


def test_a_broken_sink_is_dropped_and_the_run_goes_on():
    events = Events()
    seen: list[str] = []

    def broken(_event: dict) -> None:
        raise BrokenPipeError

    events.subscribe(broken)
    events.subscribe(lambda e: seen.append(e["type"]))
    events.say("one")
    events.say("two")
    assert seen == ["message", "message"]


def test_ci_log_lines_are_timestamped_facts():
    out = io.StringIO()
    sink = PlainProgress(out)
    for event in a_failed_canary().history:
        sink(event)
    lines = out.getvalue().splitlines()
    assert all(line[2] == ":" and " · " in line for line in lines)
    text = out.getvalue()
    assert "weights (production listener): v2 10, v1 90" in text
    assert "gate alarm errors|5xx (step 1: canary 10/100): ALARM" in text
    assert "step 1: canary 10/100: failed in 4.0s" in text


def test_the_live_view_shows_phases_weights_and_the_latest_gates():
    console = Console(file=io.StringIO(), force_terminal=True, width=120, record=True)
    view = LiveProgress(console)
    for event in a_failed_canary().history[:-1]:
        view(event)
    console.print(view.render())
    view.stop()
    text = console.export_text()
    assert "step 1: canary 10/100" in text and "4.0s" in text
    assert "weights (production): v1 100" in text
    assert "FAIL" in text and "alarm errors|5xx" in text


def test_the_step_summary_and_the_end_table():
    events = a_failed_canary().history
    summary = markdown(events)
    assert "deployer release v2 · hello/prod" in summary
    assert "failed, rolled back (exit 1)" in summary
    assert "| step 1: canary 10/100 | 4.0 | failed |" in summary
    assert "alarm errors\\|5xx" in summary  # a pipe in a name does not break the table
    assert [r.name for r in phase_rows(events)] == ["step 1: canary 10/100", "traffic back"]
    console = Console(file=io.StringIO(), width=100, record=True)
    console.print(end_table(events, events[-1]))
    assert "traffic back" in console.export_text()


def test_a_phase_still_open_at_the_end_is_interrupted():
    events = Events()
    events.emit("phase_started", phase="bake", name="bake")
    assert [(r.name, r.outcome) for r in phase_rows(events.history)] == [("bake", "interrupted")]


def test_an_aa_canarys_weights_keep_both_fleets_of_the_same_version():
    """Blue and green both serve v1 (the same build on a new fleet): the event says 90 and 10,
    not one of them.
    """
    from deployer.release.traffic import Traffic

    class Rule:
        def set_weights(self, listener: str, weights: dict[str, int]) -> None:
            self.weights = weights

    arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/{}/0123456789abcdef"
    blue, green = arn.format("hello-v1-aaaa"), arn.format("hello-v1-bbbb")
    events = Events()
    traffic = Traffic(Rule(), events)  # type: ignore[arg-type]
    traffic.serves(blue, "v1")
    traffic.serves(green, "v1")
    traffic.set_weights("listener", {blue: 90, green: 10})
    assert events.history[-1]["weights"] == {"v1 (hello-v1-aaaa)": 90, "v1 (hello-v1-bbbb)": 10}
    traffic.serves(green, "v2")
    traffic.set_weights("listener", {blue: 90, green: 10})
    assert events.history[-1]["weights"] == {"v1": 90, "v2": 10}
