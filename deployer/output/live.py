"""Progress for people on a terminal: a live Rich view (the phases with their elapsed time,
what the run waits on, the weights per version and the latest gate observations). Elsewhere
(CI logs) the same facts go out as plain timestamped lines (deployer.output.plain, which needs
no Rich). Both are sinks of the event stream; the phase table printed at the end is drawn
from it too.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from deployer.output.events import Event
from deployer.output.plain import PlainProgress, plain_line, weights_text
from deployer.output.summary import phase_rows

__all__ = ["LiveProgress", "PlainProgress", "end_table", "plain_line"]


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
            parts.append(Text(f"weights ({listener}): {weights_text(weights)}"))
        if self.gates:
            gates = Table(box=None, show_header=False, pad_edge=False)
            for o in self.gates:
                mark = "[green]pass[/]" if o["passed"] else "[red]FAIL[/]"
                if o["passed"] and o.get("verdict") == "continue":
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
