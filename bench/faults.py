"""Releases against an AWS that throttles, fails and goes away: do they still converge?

    python bench/faults.py [--releases 20] [--time-scale 0.05] [--json]

On the sandbox's `aws` profile, with rollback_window 0 so that every release creates a fleet
stack and deletes the previous one (the paths with the most waits):

1. a fault-free baseline of a few releases (wall time and API calls per release);
2. `--releases` seeded releases with 10 % of calls throttled and 2 % answered 500/503 on
   every service: how many succeeded, and the extra wall time and API calls;
3. a 15 s outage (connections refused) starting before the first change, and another
   starting once changes have begun (as the fleet stack is created): the exit code and what
   the journal says.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deployer.aws.poller import Poller  # noqa: E402
from deployer.config.loading import load_config  # noqa: E402
from deployer.errors import DeployerError  # noqa: E402
from deployer.ops.operations import history  # noqa: E402
from deployer.release.engine import Engine  # noqa: E402
from deployer.release.loop import Release  # noqa: E402
from deployer.sandbox import client, control  # noqa: E402
from deployer.sandbox.layout import Layout  # noqa: E402
from deployer.target import open_target  # noqa: E402

CONFIG = """\
app: faults
environment: e1
artifact: {{source: app}}
capacity: {{min: 1, desired: 2, max: 4}}
health_check: {{interval_seconds: 5, timeout_seconds: 3, deadline_seconds: 600}}
strategy: {{kind: all_at_once, bake_seconds: {hold}}}
gates: {{interval_seconds: {gate_interval}}}
rollback_window: 0
"""
VERSIONS = ("fa", "fb")


def engine_for(workdir: Path) -> Engine:
    loaded = load_config(workdir / "deployer.yaml")
    poller = Poller()
    runtime = open_target(loaded, workdir, poller, lambda _line: None)
    return Engine(loaded, runtime, poller, lambda _line: None, workdir)


def release(workdir: Path, version: str, on_phase: Any = None) -> dict[str, Any]:
    engine = engine_for(workdir)
    if on_phase is not None:
        engine.on_phase = on_phase
    started = time.monotonic()
    try:
        Release(engine).run(version)
        code, reason = 0, ""
    except DeployerError as exc:
        code, reason = int(exc.exit_code), exc.message
    except Exception as exc:  # noqa: BLE001 - a bench reports, it does not crash
        code, reason = -1, f"{type(exc).__name__}: {exc}"
    return {
        "version": version,
        "exit_code": code,
        "reason": reason[:300],
        "wall_s": round(time.monotonic() - started, 2),
        "api_calls": sum(engine.runtime.aws.calls.values()),
        "http_requests": engine.runtime.aws.requests,
        "transient_errors": sum(w.transient_errors for w in engine.waits),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "releases": len(runs),
        "succeeded": sum(1 for r in runs if r["exit_code"] == 0),
        "median_wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
        "median_api_calls": statistics.median(r["api_calls"] for r in runs),
        "median_http_requests": statistics.median(r["http_requests"] for r in runs),
    }


def outage_run(workdir: Path, endpoint: str, version: str, when: str) -> dict[str, Any]:
    """`deployer release` (the CLI, as CI runs it) meeting a 15 s outage: from its start, or
    from the moment its fleet stack appears (changes have begun).
    """
    import subprocess

    import boto3

    from deployer.sandbox.layout import CREDENTIALS

    cfn = boto3.client(
        "cloudformation", region_name="us-east-1", endpoint_url=endpoint, **CREDENTIALS
    )
    if when == "before":
        client.outage(endpoint, seconds=15)
        time.sleep(0.7)  # the port is closed
    started = time.monotonic()
    run = subprocess.Popen(
        [sys.executable, "-m", "deployer", "release", version, "--output", "json"],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if when == "after":
        while run.poll() is None:
            names = [s["StackName"] for s in cfn.describe_stacks()["Stacks"]]
            if any(f"-fleet-{version}-" in n for n in names):
                client.outage(endpoint, seconds=15)
                break
            time.sleep(0.05)
    out, err = run.communicate(timeout=600)
    wall = time.monotonic() - started
    time.sleep(max(0.0, 16 - wall))  # the port is back before the journal is read
    last = history(engine_for(workdir), 1)[0]
    document = json.loads(out) if out.strip().startswith("{") else {}
    return {
        "exit_code": run.returncode,
        "wall_s": round(wall, 2),
        "reason": err.strip().splitlines()[-2] if err.strip() else "",
        "journal": {k: last[k] for k in ("version", "phase", "outcome", "reason")},
        "json": document,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=20)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ["DEPLOYER_SANDBOX_TIME_SCALE"] = str(args.time_scale)
    workdir = Path(tempfile.mkdtemp(prefix="deployer-faults-"))
    for name in ("cloudformation", "playbooks"):
        shutil.copytree(REPO / name, workdir / name)
    shutil.copytree(REPO / "examples" / "hello", workdir / "app")
    gate_interval = max(0.1, round(2 * args.time_scale, 2))
    (workdir / "deployer.yaml").write_text(
        CONFIG.format(gate_interval=gate_interval, hold=math.ceil(gate_interval))
    )
    layout = Layout.for_workdir(workdir)
    report: dict[str, Any] = {"time_scale": args.time_scale}
    try:
        state, _ = control.up(layout, "aws")
        for version in VERSIONS:  # bake both images, fault-free
            release(workdir, version)
        baseline = [release(workdir, VERSIONS[i % 2]) for i in range(4)]
        report["baseline"] = summary(baseline)
        faulty = []
        for seed in range(1, args.releases + 1):
            client.set_behaviours(
                state.endpoint,
                seed=seed,
                throttle_fraction={"*": 0.10},
                error_fraction={"*": 0.02},
            )
            faulty.append(release(workdir, VERSIONS[seed % 2]))
        client.set_behaviours(state.endpoint, throttle_fraction={}, error_fraction={})
        report["faults"] = {**summary(faulty), "runs": faulty}
        report["outage_before_any_change"] = outage_run(workdir, state.endpoint, "fa", "before")
        live = history(engine_for(workdir), 1)[0]["version"]
        other = "fb" if live == "fa" else "fa"
        report["outage_after_changes_began"] = outage_run(workdir, state.endpoint, other, "after")
    finally:
        control.down(layout)
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    base, faults = report["baseline"], report["faults"]
    print(f"time scale {args.time_scale}")
    print(
        f"fault-free: {base['releases']} releases, median {base['median_wall_s']} s, "
        f"{base['median_api_calls']} API calls, {base['median_http_requests']} HTTP requests"
    )
    print(
        f"10 % throttled + 2 % 5xx: {faults['succeeded']}/{faults['releases']} succeeded, "
        f"median {faults['median_wall_s']} s "
        f"(+{faults['median_wall_s'] - base['median_wall_s']:.2f} s), "
        f"{faults['median_api_calls']} API calls, {faults['median_http_requests']} HTTP requests "
        f"(+{faults['median_http_requests'] - base['median_http_requests']} retries)"
    )
    for run in faults["runs"]:
        if run["exit_code"] != 0:
            print(f"  failed: exit {run['exit_code']}: {run['reason']}")
    for key in ("outage_before_any_change", "outage_after_changes_began"):
        run = report[key]
        print(
            f"15 s outage {key.removeprefix('outage_').replace('_', ' ')}: exit {run['exit_code']}"
            f" after {run['wall_s']} s"
        )
        print(f"  said: {run['reason'][:300]}")
        print(f"  journal: {run['journal']}")


if __name__ == "__main__":
    main()
