"""What a run did, drawn from its events: the phase table printed at the end, and the
Markdown appended to GitHub's step summary (GITHUB_STEP_SUMMARY).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deployer.output.events import Event


@dataclass(frozen=True)
class PhaseRow:
    name: str
    seconds: float
    outcome: str


def phase_rows(events: Sequence[Event]) -> list[PhaseRow]:
    """Every phase run, in order; one still open when the run ended is 'interrupted'."""
    rows: list[PhaseRow] = []
    open_phases: dict[str, Event] = {}
    for event in events:
        if event["type"] == "phase_started":
            open_phases[event["name"]] = event
        elif event["type"] == "phase_finished":
            open_phases.pop(event["name"], None)
            rows.append(PhaseRow(event["name"], float(event["seconds"]), event["outcome"]))
    rows += [PhaseRow(name, 0.0, "interrupted") for name in open_phases]
    return rows


def gate_rows(events: Sequence[Event]) -> list[tuple[str, str, int, int, str]]:
    """Per step and gate: (step, gate, passed, failed, last detail)."""
    seen: dict[tuple[str, str], list[Event]] = {}
    for event in events:
        if event["type"] == "gate_observation":
            seen.setdefault((event["step"], event["gate"]), []).append(event)
    return [
        (
            step,
            gate,
            sum(1 for o in obs if o["passed"]),
            sum(1 for o in obs if not o["passed"]),
            str(obs[-1]["detail"]),
        )
        for (step, gate), obs in seen.items()
    ]


def first(events: Sequence[Event], kind: str) -> Event | None:
    return next((e for e in events if e["type"] == kind), None)


def last(events: Sequence[Event], kind: str) -> Event | None:
    return next((e for e in reversed(events) if e["type"] == kind), None)


def failing_verdict(events: Sequence[Event]) -> Event | None:
    """The gate observation that failed the release (the last failing one before rollback)."""
    end = last(events, "outcome")
    if end is None or end["ok"]:
        return None
    rollback = next(
        (e for e in events if e["type"] == "phase_started" and e["phase"] == "rollback"), None
    )
    failing = [
        e
        for e in events
        if e["type"] == "gate_observation"
        and not e["passed"]
        and (rollback is None or e["ts"] <= rollback["ts"])
    ]
    return failing[-1] if failing else None


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(events: Sequence[Event]) -> str:
    """GitHub's step summary: version, outcome, URL, phases, gates, and how to roll back."""
    run, end = first(events, "run_started"), last(events, "outcome")
    if run is None or end is None:
        return ""
    version = end.get("version") or run.get("version") or ""
    icon = "✅" if end["ok"] else ("↩️" if end["exit_code"] == 1 else "❌")
    lines = [
        f"### {icon} deployer {run['command']} {version} · {run['app']}/{run['environment']}",
        "",
        "| | |",
        "|---|---|",
        f"| outcome | {_cell(end.get('outcome'))} (exit {end['exit_code']}) |",
        f"| version | {_cell(version or '-')} |",
        f"| release | {_cell(end.get('release_id') or '-')} |",
        f"| url | {_cell(end.get('url') or '-')} |",
        f"| who | {_cell(run['actor'])} |",
        f"| target | {_cell(run['target'])} |",
    ]
    if end.get("reason"):
        lines.append(f"| reason | {_cell(end['reason'])} |")
    failed = failing_verdict(events)
    if failed is not None and failed.get("evidence"):
        lines += [
            "",
            f"**Why {version} failed** ({_cell(failed['gate'])}, {_cell(failed['step'])}):",
        ]
        lines += ["", "| evidence | value |", "|---|---|"]
        lines += [
            f"| {_cell(k)} | {_cell(v)} |"
            for k, v in failed["evidence"].items()
            if not isinstance(v, dict | list)
        ]
        tail = failed["evidence"].get("last_lines")
        if isinstance(tail, list) and tail:
            lines += ["", "```", *[str(line) for line in tail[-20:]], "```"]
    unsure = [
        e for e in events if e["type"] == "gate_observation" and e.get("verdict") == "inconclusive"
    ]
    if unsure:
        lines += [
            "",
            "**Inconclusive steps** (too few users' requests to show harm or safety):",
            "",
        ]
        lines += [
            f"- {_cell(e['step'])}: {_cell(e['detail'])} "
            f"({'rolled back' if e['passed'] is False else 'proceeded'}: "
            f"on_inconclusive {_cell((e.get('evidence') or {}).get('on_inconclusive', '?'))})"
            for e in unsure
        ]
    rows = phase_rows(events)
    if rows:
        lines += ["", "| phase | seconds | outcome |", "|---|---:|---|"]
        lines += [f"| {_cell(r.name)} | {r.seconds:.1f} | {r.outcome} |" for r in rows]
    gates = gate_rows(events)
    if gates:
        lines += ["", "| step | gate | passed | failed | last seen |", "|---|---|---:|---:|---|"]
        lines += [
            f"| {_cell(s)} | {_cell(g)} | {ok} | {bad} | {_cell(d)} |" for s, g, ok, bad, d in gates
        ]
    if run["command"] == "release" and end["ok"]:
        lines += ["", "To roll back: `deployer rollback` (or the rollback workflow)."]
    elif run["command"] == "release" and end["exit_code"] == 4:
        lines += ["", "Needs a human: run `deployer status`, then `deployer abort`."]
    return "\n".join(lines) + "\n"
