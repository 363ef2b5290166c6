"""How fast a cancelled CI job puts traffic back, on the sandbox's aws profile.

    python bench/cancel.py [--trials 5] [--time-scale 0.05] [--api-latency-ms 40]

GitHub Actions cancels a run by sending SIGINT to the step's process, then SIGTERM 7.5 s later,
then killing the process tree 2.5 s after that (the release workflow `exec`s deployer, so
deployer is that process). Each trial releases a new fleet of the live version (a changed
setting, so no bake) with a canary step that holds for minutes, sends SIGINT while green takes
traffic, then SIGTERM and SIGKILL on GitHub's schedule, and prints:

  restore   SIGINT -> the restore's ModifyRule answered (its `weights_changed` event)
  exit      SIGINT -> deployer exited (130 expected, before the SIGKILL)

with the aws profile's API latency per call (`--api-latency-ms`, in real milliseconds, kept
whatever the time scale) and its throttling. The goal: restore under 5 s. It then checks
through the API that the production listener forwards to the previous fleet alone. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import boto3  # noqa: E402

from deployer.sandbox import control  # noqa: E402
from deployer.sandbox.layout import CREDENTIALS, Layout  # noqa: E402

CONFIG = """\
app: bench
environment: cancel
artifact: {source: app}
capacity: {min: 1, desired: 2, max: 4}
health_check: {interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 120}
strategy: {kind: canary, steps: [50, 100], bake_seconds: HOLD}
gates: {interval_seconds: 1}
rollback_window: 1h
"""
SIGTERM_AFTER_S = 7.5  # GitHub: SIGINT, 7.5 s, SIGTERM, 2.5 s, kill
KILL_AFTER_S = 2.5


def deployer(workdir: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deployer", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def events_of(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip().endswith("}")]


def epoch(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()


def switched_to_green(events: list[dict[str, object]]) -> bool:
    """The canary step's production change happened (after its phase started)."""
    in_step = False
    for event in events:
        if event["type"] == "phase_started" and event.get("phase") == "step":
            in_step = True
        if in_step and event["type"] == "weights_changed" and event["listener"] == "production":
            return True
    return False


def cancel(process: subprocess.Popen[bytes]) -> tuple[float, int]:
    """GitHub's cancel: SIGINT, SIGTERM after 7.5 s, kill after 2.5 s more. Returns when
    SIGINT was sent and the exit code.
    """
    sent = time.time()
    process.send_signal(signal.SIGINT)
    try:
        return sent, process.wait(timeout=SIGTERM_AFTER_S)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
    try:
        return sent, process.wait(timeout=KILL_AFTER_S)
    except subprocess.TimeoutExpired:
        process.kill()
        return sent, process.wait()


def production_forwards_to(workdir: Path) -> dict[str, int]:
    state = control.status(Layout.for_workdir(workdir))
    assert state is not None
    elb = boto3.client(
        "elbv2", region_name=state.region, endpoint_url=state.endpoint, **CREDENTIALS
    )
    cfn = boto3.client(
        "cloudformation", region_name=state.region, endpoint_url=state.endpoint, **CREDENTIALS
    )
    outputs = cfn.describe_stacks(StackName="bench-cancel-service")["Stacks"][0]["Outputs"]
    listener = next(o["OutputValue"] for o in outputs if o["OutputKey"] == "ListenerArn")
    rules = elb.describe_rules(ListenerArn=listener)["Rules"]
    rule = next(r for r in rules if r["Priority"] == "1")
    groups = rule["Actions"][0]["ForwardConfig"]["TargetGroups"]
    return {g["TargetGroupArn"].split("/")[-2]: g["Weight"] for g in groups if g["Weight"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--api-latency-ms", type=float, default=40.0, help="real ms per call")
    args = parser.parse_args()
    behaviours = {
        # api_latency_ms is scaled by the time scale: ask for what gives the real figure.
        "api_latency_ms": args.api_latency_ms / args.time_scale,
        "shutdown_time_scale": 1.0,
    }
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DEPLOYER_SANDBOX_PROFILE": "aws",
        "DEPLOYER_SANDBOX_TIME_SCALE": str(args.time_scale),
        "DEPLOYER_SANDBOX_BEHAVIOURS": json.dumps(behaviours),
    }
    workdir = Path(tempfile.mkdtemp(prefix="deployer-bench-cancel-"))
    for name in ("cloudformation", "playbooks"):
        shutil.copytree(REPO / name, workdir / name)
    shutil.copytree(REPO / "examples" / "hello", workdir / "app")
    (workdir / "first.yaml").write_text(CONFIG.replace("HOLD", "1"))  # blue, at once
    (workdir / "deployer.yaml").write_text(CONFIG.replace("HOLD", "3600"))  # held for minutes
    restores: list[float] = []
    exits: list[float] = []
    try:
        first = deployer(workdir, "-c", "first.yaml", "release", "v1", "-o", "json", env=env)
        if first.returncode != 0:
            sys.exit(f"the first release failed:\n{first.stderr[-2000:]}")
        live = production_forwards_to(workdir)
        for trial in range(1, args.trials + 1):
            deployer(workdir, "config", "set", "ROUND", str(trial), env=env)  # a new fleet
            events = workdir / f"events-{trial}.jsonl"
            process = subprocess.Popen(
                [sys.executable, "-m", "deployer", "release", "v1", "--events", str(events)],
                cwd=workdir,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.time() + 600
            while not switched_to_green(events_of(events)) and time.time() < deadline:
                if process.poll() is not None:
                    break
                time.sleep(0.05)
            if process.poll() is not None or not switched_to_green(events_of(events)):
                process.kill()
                print(f"trial {trial}: green never took traffic; skipped")
                continue
            time.sleep(0.5)  # into the step's hold
            sent, code = cancel(process)
            ended = time.time()
            after = [e for e in events_of(events) if epoch(e) >= sent - 0.001]
            restore = next(
                (
                    e
                    for e in after
                    if e["type"] == "weights_changed" and e["listener"] == "production"
                ),
                None,
            )
            back = production_forwards_to(workdir) == live
            if restore is None:
                print(f"trial {trial}: exit {code}, no restore event; blue alone: {back}")
                continue
            restores.append(epoch(restore) - sent)
            exits.append(ended - sent)
            print(
                f"trial {trial}: restore {restores[-1]:.2f} s, exit {code} after "
                f"{exits[-1]:.2f} s, production on the previous fleet alone: {back}"
            )
        print(
            f"\naws profile, time scale {args.time_scale}, API latency "
            f"{args.api_latency_ms:g} ms per call, {len(restores)} trials"
        )
        for name, values in (("SIGINT -> restore", restores), ("SIGINT -> exit", exits)):
            if values:
                print(
                    f"  {name:<18} min {min(values):5.2f}  median "
                    f"{statistics.median(values):5.2f}  max {max(values):5.2f} s"
                )
    finally:
        control.down(Layout.for_workdir(workdir))
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
