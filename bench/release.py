"""Sandbox releases, measured: per phase, the wall time, the *inherent* time (what the modelled
AWS itself took for that phase's operations on the critical path) and their ratio.

    python bench/release.py [--profile aws|fast] [--time-scale 1.0] [--json] [--keep]

It runs in a scratch directory with its own sandbox (stopped at the end unless --keep) and
releases the sample app three ways: a first release (bake + infra), a second version whose
image is already baked (the figure users ask first), and a no-op rerun. Health checks are
ELBv2's 5 s x 2; traffic steps hold for one gate interval.

"Inherent" is the union, within each phase's window, of the operations the sandbox modelled
(stack work, instance pending, boot, image, target registration to healthy, API call
latency). Wall time beyond it is deployer's: its local CPU (the phase_finished events'
cpu_s) and its waiting beyond the inherent time (polling delay). Modelled as against AWS:
inherent / scale + waiting / scale + CPU, unscaled (CPU takes as long here as there). The
ratio is modelled / inherent; phases and CPU come from the run's event stream.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deployer.aws.poller import Poller  # noqa: E402
from deployer.config.loading import load_config  # noqa: E402
from deployer.release.baking import bake  # noqa: E402
from deployer.release.engine import Engine  # noqa: E402
from deployer.release.loop import Release  # noqa: E402
from deployer.sandbox import client, control  # noqa: E402
from deployer.sandbox.layout import Layout  # noqa: E402
from deployer.target import open_target  # noqa: E402

CONFIG = """\
app: bench
environment: e1
artifact: {{source: app}}
capacity: {{min: 2, desired: 2, max: 4}}
health_check: {{interval_seconds: 5, timeout_seconds: 3, healthy_threshold: 2,
               unhealthy_threshold: 2, deadline_seconds: 600}}
strategy: {{kind: all_at_once, bake_seconds: {hold}}}
gates: {{interval_seconds: {gate_interval}}}
rollback_window: 1h
"""


def engine_for(workdir: Path) -> Engine:
    loaded = load_config(workdir / "deployer.yaml")
    poller = Poller()
    runtime = open_target(loaded, workdir, poller, lambda _line: None)
    return Engine(loaded, runtime, poller, lambda _line: None, workdir)


def union_within(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end] covered by at least one span."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in spans if b > start and a < end)
    total, reach = 0.0, start
    for a, b in clipped:
        if b > reach:
            total += b - max(a, reach)
            reach = b
    return total


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def phase_windows(engine: Engine) -> dict[str, dict[str, float]]:
    """Each phase's runs from the event stream: first start, last end, and the summed wall
    and CPU seconds of its runs (traffic steps run several times)."""
    windows: dict[str, dict[str, float]] = {}
    started: dict[str, float] = {}
    for event in engine.events.history:
        if event["type"] == "phase_started":
            started[event["phase"]] = epoch(event["ts"])
        elif event["type"] == "phase_finished":
            phase = event["phase"]
            end = epoch(event["ts"])
            row = windows.setdefault(
                phase, {"start": started.get(phase, end), "end": end, "wall": 0.0, "cpu": 0.0}
            )
            row["end"] = end
            row["wall"] += event["seconds"]
            row["cpu"] += event["cpu_s"]
    return windows


def measure(engine: Engine, endpoint: str, scale: float, hold_s: float) -> dict[str, Any]:
    """As it would run against AWS: the inherent time (modelled AWS work on the critical path,
    unscaled back to AWS's clock), plus deployer's waiting beyond it (polling delay; scaled
    like AWS's), plus deployer's local CPU, unscaled: CPU takes as long here as there.
    """
    spans = [(s["start"], s["end"]) for s in client.timeline(endpoint, time.time() - 3600)]
    phases: dict[str, Any] = {}
    totals = {"modelled": 0.0, "inherent": 0.0, "waiting": 0.0, "cpu": 0.0}
    for phase, row in phase_windows(engine).items():
        wall = row["wall"] - (hold_s if phase == "step" else 0.0)  # holds are not overhead
        inherent = min(union_within(spans, row["start"], row["end"]), max(wall, 0.0))
        cpu = min(row["cpu"], max(wall - inherent, 0.0))
        waiting = max(wall - inherent - cpu, 0.0)
        modelled = inherent / scale + waiting / scale + cpu
        for key, value in (
            ("modelled", modelled),
            ("inherent", inherent / scale),
            ("waiting", waiting / scale),
            ("cpu", cpu),
        ):
            totals[key] += value
        phases[phase] = {
            "wall_s": round(wall, 3),
            "inherent_s": round(inherent / scale, 1),
            "waiting_s": round(waiting / scale, 1),
            "cpu_s": round(cpu, 2),
            "modelled_s": round(modelled, 1),
            "overhead_ratio": round(modelled / (inherent / scale), 3) if inherent > 0 else None,
        }
    waits = [
        {
            "what": w.what,
            "modelled_s": round(w.seconds / scale, 1),
            "polls": w.polls,
            "api_calls": w.api_calls,
        }
        for w in engine.waits
    ]
    return {
        "modelled_s": round(totals["modelled"], 1),
        "inherent_s": round(totals["inherent"], 1),
        "waiting_s": round(totals["waiting"], 1),
        "cpu_s": round(totals["cpu"], 2),
        "overhead_ratio": (
            round(totals["modelled"] / totals["inherent"], 3) if totals["inherent"] else None
        ),
        "phases": phases,
        "api_calls": dict(sorted(engine.runtime.aws.calls.items())),
        "api_calls_total": sum(engine.runtime.aws.calls.values()),
        "waits": waits,
    }


def show(title: str, result: dict[str, Any]) -> None:
    print(f"\n{title}")
    print(
        f"  {'phase':<10}{'wall s':>9}{'inherent s':>12}{'waiting s':>11}{'cpu s':>8}"
        f"{'modelled s':>12}{'ratio':>8}"
    )
    for phase, row in result["phases"].items():
        ratio = f"{row['overhead_ratio']:.2f}" if row["overhead_ratio"] else "-"
        print(
            f"  {phase:<10}{row['wall_s']:>9.2f}{row['inherent_s']:>12.1f}{row['waiting_s']:>11.1f}"
            f"{row['cpu_s']:>8.2f}{row['modelled_s']:>12.1f}{ratio:>8}"
        )
    print(f"  API calls: {result['api_calls_total']} {result['api_calls']}")
    for wait in result["waits"]:
        print(
            f"    wait {wait['what'][:60]:<60} {wait['modelled_s']:>7.1f} s "
            f"{wait['polls']:>3} polls {wait['api_calls']:>4} calls"
        )
    ratio = result["overhead_ratio"]
    print(
        f"  modelled on AWS: {result['modelled_s']:.1f} s = inherent {result['inherent_s']:.1f} s"
        f" + waiting {result['waiting_s']:.1f} s + local CPU {result['cpu_s']:.2f} s; "
        f"overhead ratio {ratio if ratio is not None else '-'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="aws", choices=["aws", "fast"])
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running")
    args = parser.parse_args()
    scale = args.time_scale
    os.environ["DEPLOYER_SANDBOX_TIME_SCALE"] = str(scale)
    gate_interval = max(0.1, round(2 * scale, 2))
    workdir = Path(tempfile.mkdtemp(prefix="deployer-bench-"))
    for name in ("cloudformation", "playbooks"):
        shutil.copytree(REPO / name, workdir / name)
    shutil.copytree(REPO / "examples" / "hello", workdir / "app")
    (workdir / "deployer.yaml").write_text(
        CONFIG.format(gate_interval=gate_interval, hold=math.ceil(gate_interval))
    )
    layout = Layout.for_workdir(workdir)
    report: dict[str, Any] = {"profile": args.profile, "time_scale": scale, "releases": {}}
    try:
        state, _ = control.up(layout, args.profile)
        hold = math.ceil(gate_interval)  # the final step holds for this: not overhead
        engine = engine_for(workdir)
        Release(engine).run("bench-1")
        report["releases"]["first"] = measure(engine, state.endpoint, scale, hold)
        bake(engine_for(workdir), "bench-2")
        engine = engine_for(workdir)
        Release(engine).run("bench-2")
        second = measure(engine, state.endpoint, scale, hold)
        report["releases"]["second_cached_image"] = second
        engine = engine_for(workdir)
        started = time.monotonic()
        Release(engine).run("bench-2")
        report["releases"]["noop"] = {
            "wall_s": round(time.monotonic() - started, 3),
            "api_calls_total": sum(engine.runtime.aws.calls.values()),
        }
        report.update(
            modelled_s=second["modelled_s"],
            inherent_s=second["inherent_s"],
            overhead_ratio=second["overhead_ratio"],
        )
    finally:
        if not args.keep:
            control.down(layout)
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"profile {args.profile}, time scale {scale} (modelled = wall / scale)")
    show("first release (infra + bake + fleet + gate + switch)", report["releases"]["first"])
    show("second version, image already baked", second)
    noop = report["releases"]["noop"]
    print(f"\nno-op rerun: {noop['wall_s']:.2f} s wall, {noop['api_calls_total']} API calls")
    print(
        f"\nmodelled on AWS: {second['modelled_s']:.1f} s (inherent {second['inherent_s']:.1f} s), "
        f"overhead ratio {second['overhead_ratio']}"
    )


if __name__ == "__main__":
    main()
