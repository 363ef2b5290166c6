"""Progress for people: on a terminal a live Rich view (the phases with their elapsed time,
what the run waits on, the weights per version and the latest gate observations), elsewhere
(CI logs) the same facts as plain timestamped lines. Both are sinks of the event stream; the
phase table printed at the end is drawn from it too.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from deployer.output.events import Event
from deployer.output.summary import phase_rows

PLAIN_TYPES = ("message", "phase_finished", "weights_changed", "wait_status", "aws_retry")


def _weights(weights: dict[str, int]) -> str:
    return ", ".join(f"{version} {weight}" for version, weight in weights.items()) or "none"


def plain_line(event: Event) -> str:
    """One line for a CI log, or '' for events a log does not need."""
    kind = event["type"]
    if kind == "message":
        return str(event["text"])
    if kind == "phase_finished":
        return f"{event['name']}: {event['outcome']} in {event['seconds']:.1f}s"
    if kind == "weights_changed":
        return f"weights ({event['listener']} listener): {_weights(event['weights'])}"
    if kind == "wait_status":
        return f"waiting for {event['what']}: {event['status']}"
    if kind == "aws_retry":
        return f"aws: {event['operation']} answered {event['error']}; retrying"
    if kind == "gate_observation" and event["passed"] is not True:
        return f"gate {event['gate']} ({event['step']}): {event['detail']}"
    return ""


class PlainProgress:
    """Timestamped lines, for CI logs and whenever stderr is not a terminal."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._verdicts: dict[tuple[str, str], str] = {}

    def __call__(self, event: Event) -> None:
        line = plain_line(event) or self._new_verdict(event)
        if line:
            self._stream.write(f"{event['ts'][11:19]} · {line}\n")
            self._stream.flush()

    def _new_verdict(self, event: Event) -> str:
        """A metric gate's verdict, each time it changes within a step (with its numbers)."""
        if event["type"] != "gate_observation" or not event.get("verdict"):
            return ""
        key = (event["step"], event["gate"])
        if self._verdicts.get(key) == event["verdict"]:
            return ""
        self._verdicts[key] = event["verdict"]
        return f"gate {event['gate']} ({event['step']}): {event['verdict']}: {event['detail']}"


class LiveProgress:
    """The Rich view on a terminal. Messages scroll above it; it stops at the outcome."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.phases: dict[str, dict[str, Any]] = {}
        self.waiting = ""
        self.weights: dict[str, dict[str, int]] = {}
        self.gates: deque[Event] = deque(maxlen=6)
        self._live: Live | None = None

    def __call__(self, event: Event) -> None:
        kind = event["type"]
        if kind == "phase_started":
            self.phases[event["name"]] = {"started": time.monotonic(), "outcome": "running"}
        elif kind == "phase_finished":
            self.phases[event["name"]] = {"seconds": event["seconds"], "outcome": event["outcome"]}
        elif kind in ("wait_started", "wait_status"):
            self.waiting = f"{event['what']}" + (
                f": {event['status']}" if "status" in event else ""
            )
        elif kind == "wait_finished":
            self.waiting = ""
        elif kind == "weights_changed":
            self.weights[event["listener"]] = dict(event["weights"])
        elif kind == "gate_observation":
            self.gates.append(event)
        elif kind == "message":
            live = self._live
            (live.console if live is not None else self.console).print(Text(f"· {event['text']}"))
        elif kind == "outcome":
            self.stop()
            return
        if kind != "message" and self.phases:
            self._start().update(self.render())

    def _start(self) -> Live:
        if self._live is None:
            self._live = Live(self.render(), console=self.console, refresh_per_second=4)
            self._live.start()
        return self._live

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.stop()
            self._live = None

    def render(self) -> Group:
        phases = Table(box=None, show_header=False, pad_edge=False)
        for name, state in self.phases.items():
            if state["outcome"] == "running":
                took = time.monotonic() - state["started"]
                phases.add_row("[cyan]…[/]", Text(name), f"{took:.0f}s")
            else:
                mark = "[green]✓[/]" if state["outcome"] == "done" else "[red]✗[/]"
                phases.add_row(mark, Text(name), f"{state['seconds']:.1f}s")
        parts: list[Any] = [phases]
        if self.waiting:
            parts.append(Text(f"waiting for {self.waiting}", style="dim"))
        for listener, weights in self.weights.items():
            parts.append(Text(f"weights ({listener}): {_weights(weights)}"))
        if self.gates:
            gates = Table(box=None, show_header=False, pad_edge=False)
            for o in self.gates:
                mark = "[green]pass[/]" if o["passed"] else "[red]FAIL[/]"
                if o["passed"] and o.get("verdict") == "insufficient":
                    mark = "[dim]wait[/]"
                gates.add_row(mark, Text(o["gate"]), Text(str(o["detail"])[:60]), Text(o["step"]))
            parts.append(gates)
        return Group(*parts)


def end_table(events: Sequence[Event], outcome: Event) -> Table:
    """The release summary: each phase and its duration, and the outcome."""
    verdict = "ok" if outcome["ok"] else f"exit {outcome['exit_code']}"
    table = Table(title=f"{outcome.get('outcome') or verdict} ({verdict})", title_justify="left")
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    table.add_column("outcome")
    for row in phase_rows(events):
        table.add_row(Text(row.name), f"{row.seconds:.1f}", row.outcome)
    return table
