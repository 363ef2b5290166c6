"""`deployer report`: one release drawn from its recorded events (`.deployer/events/`, or an
`--events` file): the phases on a time axis, each version's share of production traffic over
time, every gate observation as a pass, wait (a metric gate without enough data yet) or
fail mark, and the failure point, with the failing verdict and its numbers, and rollback.

matplotlib (the `report` extra) draws it; SVG keeps its text as text, and every element
carries an id (`phase:…`, `weights:…`, `gate-pass`, `gate-wait`, `gate-fail`, `failure`,
`verdict`, `rollback`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from deployer.errors import BadInput
from deployer.output.events import Event
from deployer.output.summary import failing_verdict, first, last

FORMATS = (".svg", ".png")


def read_events(path: Path) -> list[Event]:
    events = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            raise BadInput(f"{path}: line {number} is not JSON") from None
        if not isinstance(event, dict) or "type" not in event or "ts" not in event:
            raise BadInput(f"{path}: line {number} is not a deployer event")
        events.append(event)
    return events


def find_release(directory: Path, wanted: str) -> tuple[Path, list[Event]]:
    """The record of release `wanted` (a release id or run id), or the newest release's."""
    records = sorted(directory.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in records:
        events = read_events(path)
        ids = {e["release_id"] for e in events if e["type"] == "release"}
        if wanted == "latest":
            started = first(events, "run_started")
            if ids and started is not None and started.get("command") == "release":
                return path, events
        elif wanted in ids or path.stem == wanted:
            return path, events
    what = "no release is recorded" if wanted == "latest" else f"no release {wanted} is recorded"
    raise BadInput(f"{what} in {directory} (releases run from this directory are recorded there)")


def _seconds(event: Event, start: datetime) -> float:
    when = datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
    return (when - start).total_seconds()


def draw(events: Sequence[Event], out: Path) -> dict[str, Any]:
    """Write the picture; returns what it shows (for the CLI's output)."""
    if out.suffix.lower() not in FORMATS:
        raise BadInput(f"--out {out}: the picture must be .svg or .png")
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        raise BadInput(
            "deployer report needs matplotlib: pip install 'deployer-ec2-alb[report]'"
        ) from None
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text in the SVG
    if not events:
        raise BadInput("the record holds no events")
    start = datetime.fromisoformat(events[0]["ts"].replace("Z", "+00:00"))
    run, end = first(events, "run_started"), last(events, "outcome")
    fig = Figure(figsize=(11, 8), layout="constrained")
    phases_ax, weights_ax, gates_ax = fig.subplots(3, 1, height_ratios=[2, 2, 1.5])
    gates_ax.sharex(weights_ax)
    window = _traffic_window(events, start)
    shown = {
        "phases": _phases(phases_ax, events, start),
        "versions": _weights(weights_ax, events, start, window[0]),
        "gates": _gates(gates_ax, events, start),
    }
    weights_ax.set_xlim(*window)
    phases_ax.axvspan(*window, color="steelblue", alpha=0.08, gid="traffic-window")
    phases_ax.set_xlabel("seconds since the run started (shaded: the traffic window below)")
    failure = _failure(events, start)
    for ax in (phases_ax, weights_ax, gates_ax):
        if failure is not None:
            ax.axvline(failure, color="crimson", linestyle="--", linewidth=1.2, gid="failure")
    failed = failing_verdict(events)
    verdict_text = f"{failed['gate']}: {failed['detail']}" if failed else ""
    if failure is not None and verdict_text:
        note = weights_ax.annotate(
            _wrap(verdict_text, 70),
            xy=(failure, 50),
            xytext=(6, 0),
            textcoords="offset points",
            fontsize=7,
            color="crimson",
            va="center",
        )
        note.set_gid("verdict")
    rollback = [
        (_seconds(e, start) - float(e["seconds"]), float(e["seconds"]))
        for e in events
        if e["type"] == "phase_finished" and e["phase"] in ("rollback", "switch")
    ]
    for begin, width in rollback:
        weights_ax.axvspan(
            begin, begin + max(width, 0.2), color="orange", alpha=0.3, gid="rollback"
        )
    version = (end or {}).get("version") or (run or {}).get("version") or ""
    verdict = (end or {}).get("outcome") or "no outcome recorded (killed?)"
    where = f"{run['app']}/{run['environment']}" if run else ""
    fig.suptitle(f"deployer {(run or {}).get('command', '')} {version} {where}: {verdict}")
    gates_ax.set_xlabel("seconds since the run started (traffic window)")
    fig.savefig(out)
    return {
        **shown,
        "failure_at": failure,
        "verdict": verdict_text,
        "rollback": bool(rollback),
        "outcome": verdict,
        "out": str(out),
    }


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)[:4])


def _phases(ax: Any, events: Sequence[Event], start: datetime) -> list[str]:
    names: list[str] = []
    for e in events:
        if e["type"] != "phase_finished":
            continue
        if e["name"] not in names:
            names.append(e["name"])
        row = names.index(e["name"])
        begin = _seconds(e, start) - float(e["seconds"])
        color = "seagreen" if e["outcome"] == "done" else "crimson"
        bars = ax.broken_barh(
            [(begin, max(float(e["seconds"]), 0.2))], (row - 0.35, 0.7), color=color
        )
        bars.set_gid(f"phase:{e['name']}")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_title("phases", loc="left", fontsize=9)
    return names


def _traffic_window(events: Sequence[Event], start: datetime) -> tuple[float, float]:
    """From the gate before the switch (or the first weight change) to the end, so that a
    long bake does not squeeze the canary into a sliver.
    """
    ends = _seconds(events[-1], start)
    begins = next(
        (
            _seconds(e, start)
            for e in events
            if (e["type"] == "phase_started" and e["phase"] in ("gate", "switch"))
            or e["type"] == "weights_changed"
        ),
        0.0,
    )
    margin = max(0.5, 0.05 * (ends - begins))
    return max(0.0, begins - margin), ends + margin


def _weights(ax: Any, events: Sequence[Event], start: datetime, since: float) -> list[str]:
    """Production weights per version: from the traffic before the release (its record),
    through every change.
    """
    release = first(events, "release")
    changes: list[Event] = []
    if release is not None and release.get("prior_weights"):
        changes.append({**release, "weights": release["prior_weights"], "at": since})
    changes += [
        e for e in events if e["type"] == "weights_changed" and e["listener"] == "production"
    ]
    versions: list[str] = []
    for e in changes:
        versions += [v for v in e["weights"] if v not in versions]
    ends = _seconds(events[-1], start)
    for version in versions:
        xs, ys = [], []
        for e in changes:
            total = sum(e["weights"].values()) or 1
            xs.append(e.get("at", _seconds(e, start)))
            ys.append(100.0 * e["weights"].get(version, 0) / total)
        xs.append(ends)
        ys.append(ys[-1])
        (line,) = ax.step(xs, ys, where="post", label=version, linewidth=2)
        line.set_gid(f"weights:{version}")
    ax.set_ylim(-5, 105)
    ax.set_ylabel("% of traffic")
    ax.set_title("production traffic per version", loc="left", fontsize=9)
    if versions:
        ax.legend(loc="center left", fontsize=8)
    return versions


def _gates(ax: Any, events: Sequence[Event], start: datetime) -> dict[str, int]:
    observed = [e for e in events if e["type"] == "gate_observation"]
    gates: list[str] = []
    for e in observed:
        if e["gate"] not in gates:
            gates.append(e["gate"])
    counts = {"pass": 0, "wait": 0, "fail": 0}
    for gid, marker, color in (
        ("pass", "o", "seagreen"),
        ("wait", ".", "grey"),
        ("fail", "x", "crimson"),
    ):
        chosen = [e for e in observed if _mark(e) == gid]
        counts[gid] = len(chosen)
        if chosen:
            ax.scatter(
                [_seconds(e, start) for e in chosen],
                [gates.index(e["gate"]) for e in chosen],
                marker=marker,
                color=color,
                s=18,
                gid=f"gate-{gid}",
            )
    ax.set_yticks(range(len(gates)), [g[:28] for g in gates])
    ax.set_ylim(-0.5, max(len(gates), 1) - 0.5)
    ax.invert_yaxis()
    ax.set_title(
        "gate observations (o pass, . not enough data yet, x fail)", loc="left", fontsize=9
    )
    return counts


def _mark(event: Event) -> str:
    if not event["passed"]:
        return "fail"
    return "wait" if event.get("verdict") in ("continue", "inconclusive") else "pass"


def _failure(events: Sequence[Event], start: datetime) -> float | None:
    """When the gate that failed the release was seen failing, if it failed."""
    end = last(events, "outcome")
    if end is None or end["ok"]:
        return None
    failed = failing_verdict(events)
    return _seconds(failed if failed is not None else end, start)
