"""Progress as plain timestamped lines, for CI logs and whenever stderr is not a terminal.
A sink of the event stream, like the live view (deployer.output.live), but without Rich: a
command that draws nothing (status, history, a locked release) never imports it.
"""

from __future__ import annotations

from typing import IO

from deployer.output.events import Event

PLAIN_TYPES = ("message", "phase_finished", "weights_changed", "wait_status", "aws_retry")


def weights_text(weights: dict[str, int]) -> str:
    return ", ".join(f"{version} {weight}" for version, weight in weights.items()) or "none"


def plain_line(event: Event) -> str:
    """One line for a CI log, or '' for events a log does not need."""
    kind = event["type"]
    if kind == "message":
        return str(event["text"])
    if kind == "phase_finished":
        return f"{event['name']}: {event['outcome']} in {event['seconds']:.1f}s"
    if kind == "weights_changed":
        return f"weights ({event['listener']} listener): {weights_text(event['weights'])}"
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
