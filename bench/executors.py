"""A 3-step canary on each executor, on the sandbox's `aws` profile: how long its traffic
part takes on AWS's clock, and, run by Step Functions, how many state transitions it makes
and what they cost at AWS's price.

    python bench/executors.py [--time-scale 0.25] [--rate 20] [--runs 1] [--json]

In a scratch directory with its own sandbox, it releases the sample app (v1, blue), drives
steady user traffic (`--rate` requests per modelled second), then releases a new fleet of v1
(a changed setting: same image, no bake) with `strategy: canary [10, 50, 100]` and every
gate on, `--runs` times on each executor. For each run: the modelled seconds from the first
traffic step to the release's end (wall seconds / time scale; the holds are given in
modelled seconds x the scale), and for Step Functions the execution's state transitions
(every state entered, as AWS bills them) and their price ($0.025 per 1,000, Standard
workflows, us-east-1, after the free tier).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.detect import Traffic, cli, events  # noqa: E402
from deployer.sandbox import control  # noqa: E402
from deployer.sandbox.layout import CREDENTIALS, Layout  # noqa: E402

PRICE_PER_TRANSITION = 0.025 / 1000  # USD, Standard workflows
CONFIG = """\
app: bench
environment: executors
artifact: {{source: app}}
capacity: {{min: 2, desired: 2, max: 4}}
health_check: {{interval_seconds: 5, timeout_seconds: 3, deadline_seconds: 600}}
strategy: {{kind: canary, steps: [10, 50, 100], bake_seconds: {hold}}}
gates: {{interval_seconds: {interval}}}
"""


def traffic_seconds(path: Path) -> float:
    """Wall seconds from the first traffic step's start to the run's end."""
    seen = events(path)
    start = next(e["ts"] for e in seen if e["type"] == "phase_started" and e["phase"] == "step")
    return stamp(seen[-1]["ts"]) - stamp(start)


def stamp(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def transitions(layout: Layout, execution_arn: str) -> int:
    state = control.status(layout)
    assert state is not None
    sfn = boto3.client(
        "stepfunctions", region_name=state.region, endpoint_url=state.endpoint, **CREDENTIALS
    )
    pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return sum(1 for page in pages for e in page["events"] if e["type"].endswith("StateEntered"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=0.25)
    parser.add_argument("--rate", type=float, default=20.0, help="modelled requests/second")
    parser.add_argument("--runs", type=int, default=1, help="releases on each executor")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scale = args.time_scale
    os.environ["DEPLOYER_SANDBOX_TIME_SCALE"] = str(scale)
    os.environ["DEPLOYER_SANDBOX_PROFILE"] = "aws"
    workdir = Path(tempfile.mkdtemp(prefix="deployer-executors-"))
    for name in ("cloudformation", "playbooks"):
        shutil.copytree(REPO / name, workdir / name)
    shutil.copytree(REPO / "examples" / "hello", workdir / "app")
    hold = max(1, round(60 * scale))  # a minute's hold, modelled
    interval = round(max(0.1, 5 * scale), 2)
    (workdir / "deployer.yaml").write_text(CONFIG.format(hold=hold, interval=interval))
    layout = Layout.for_workdir(workdir)
    report: dict[str, Any] = {"time_scale": scale, "modelled_requests_per_s": args.rate}
    try:
        first = cli(workdir, "release", "v1", "--output", "json")
        if first.returncode:
            raise SystemExit(f"the first release failed: {first.stderr[-2000:]}")
        url = json.loads(first.stdout)["url"]
        with Traffic(url, args.rate / scale):
            for executor in ("local", "stepfunctions"):
                runs = []
                for n in range(args.runs):
                    cli(workdir, "config", "set", "BENCH_RUN", f"{executor}-{n}")
                    path = workdir / f"{executor}-{n}.jsonl"
                    started = time.monotonic()
                    done = cli(
                        workdir, "release", "v1", "--executor", executor, "--events", str(path),
                        "--output", "json",
                    )  # fmt: skip
                    run: dict[str, Any] = {
                        "exit": done.returncode,
                        "wall_s": round(time.monotonic() - started, 1),
                        "traffic_modelled_s": round(traffic_seconds(path) / scale),
                    }
                    arn = json.loads(done.stdout).get("execution") if done.stdout else None
                    if arn:
                        run["transitions"] = transitions(layout, arn)
                        run["cost_usd"] = round(run["transitions"] * PRICE_PER_TRANSITION, 5)
                    runs.append(run)
                report[executor] = {
                    "runs": runs,
                    "median_traffic_modelled_s": statistics.median(
                        r["traffic_modelled_s"] for r in runs
                    ),
                }
    finally:
        control.down(layout)
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for executor in ("local", "stepfunctions"):
        for run in report[executor]["runs"]:
            extra = (
                f", {run['transitions']} transitions, ${run['cost_usd']:.5f}"
                if "transitions" in run
                else ""
            )
            print(
                f"{executor:>13}: exit {run['exit']}, traffic part {run['traffic_modelled_s']} "
                f"modelled s (wall {run['wall_s']} s){extra}"
            )


if __name__ == "__main__":
    main()
