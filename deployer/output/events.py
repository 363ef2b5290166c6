"""One stream of events: everything observable a run does. Human progress, `--events` JSON
lines, the CI step summary, notifications and the timeline picture are renderings of it;
nothing parses human text.

Every event is one JSON object: {"ts": ISO 8601 UTC, "type": ..., "run": the run's id, ...}.
The types and their fields (deployer/output/events.schema.json holds the same, pinned by a test):

    run_started       command, version, actor, app, environment, target, config, config_digest
    release           release_id, kind, version, prior_weights {version: weight}
                      (a journal record this run works on, and the traffic before it)
    phase_started     phase, name
    phase_finished    phase, name, seconds, cpu_s (this process's CPU in it), outcome ("done" or
                      "failed")
    wait_started      what
    wait_status       what, status
    wait_finished     what, seconds, polls, api_calls, transient_errors, outcome
    gate_observation  gate, kind, passed (true, false, or null: unreadable), detail, step,
                      version; metric and verify gates add verdict ("pass", "fail",
                      "continue": not enough evidence yet; "inconclusive": still so at the
                      deadline) and evidence {numbers}
    weights_changed   listener ("production" or "test"), weights {version: weight}
    aws_retry         operation, error, attempt
    message           text                               (a line of human progress)
    outcome           ok, exit_code, outcome, version, release_id, url, reason
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

from deployer.core import names

Event = dict[str, Any]
Sink = Callable[[Event], None]

TYPES: dict[str, tuple[str, ...]] = {
    "run_started": (
        "command",
        "version",
        "actor",
        "app",
        "environment",
        "target",
        "config",
        "config_digest",
    ),
    "release": ("release_id", "kind", "version", "prior_weights"),
    "phase_started": ("phase", "name"),
    "phase_finished": ("phase", "name", "seconds", "cpu_s", "outcome"),
    "wait_started": ("what",),
    "wait_status": ("what", "status"),
    "wait_finished": ("what", "seconds", "polls", "api_calls", "transient_errors", "outcome"),
    "gate_observation": ("gate", "kind", "passed", "detail", "step", "version"),
    "weights_changed": ("listener", "weights"),
    "aws_retry": ("operation", "error", "attempt"),
    "message": ("text",),
    "outcome": ("ok", "exit_code", "outcome", "version", "release_id", "url", "reason"),
}


def new_run_id() -> str:
    return names.new_run_id(datetime.now(UTC))


def stamp(epoch: float) -> str:
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


class Events:
    """The run's event stream: emit, and every sink sees each event, in order."""

    def __init__(self, run_id: str = "", clock: Callable[[], float] = time.time) -> None:
        self.run_id = run_id
        self.clock = clock
        self.history: list[Event] = []
        self._sinks: list[Sink] = []
        self._lock = threading.Lock()  # the lock heartbeat and copy threads emit too

    def subscribe(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def emit(self, kind: str, /, **fields: Any) -> Event:
        if kind not in TYPES:
            raise ValueError(f"unknown event type {kind}")
        event: Event = {"ts": stamp(self.clock()), "type": kind, "run": self.run_id, **fields}
        with self._lock:
            self.history.append(event)
            sinks = list(self._sinks)
        for sink in sinks:
            try:
                sink(event)
            except Exception:  # noqa: BLE001 - a broken sink (a closed pipe) must not fail a run
                with self._lock:
                    if sink in self._sinks:
                        self._sinks.remove(sink)
        return event

    def say(self, text: str) -> None:
        self.emit("message", text=text)

    def of_type(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self.history if e["type"] == kind]


class JsonLines:
    """`--events PATH`: one JSON object per line, written as things happen."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: Event) -> None:
        self._stream.write(json.dumps(event, default=str) + "\n")
        self._stream.flush()
