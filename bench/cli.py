"""Everyday commands, timed as a user runs them (whole processes) on the sandbox:

    python bench/cli.py [--runs 5] [--profile fast|aws] [--startup-only]

- `deployer --help` (goal 0.3 s): the CLI's own start, no config, no sandbox (--startup-only
  stops there);
- `deployer status` and a no-op `deployer release` of the live version (goals: 0.5 s, 1 s);
- how soon the losers of 5 and 20 racing `release` commands hear "locked" (exit 3, goal 2 s);
- how soon a build whose health check answers 500 from boot is rejected (goal: within
  unhealthy_threshold x interval + one interval of its targets registering), at AWS's timing.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = """\
app: clibench
environment: e1
artifact: {{source: {source}}}
capacity: {{min: 1, desired: 2, max: 4}}
health_check: {{interval_seconds: 5, timeout_seconds: 3, healthy_threshold: 2,
               unhealthy_threshold: 2, deadline_seconds: 600}}
strategy: {{kind: all_at_once, bake_seconds: {hold}}}
gates: {{interval_seconds: 2}}
"""


def cli(workdir: Path, env: dict[str, str], *args: str) -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "deployer", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, time.monotonic() - started, done.stderr


def timed(workdir: Path, env: dict[str, str], runs: int, *args: str) -> list[float]:
    times = []
    for _ in range(runs):
        code, took, err = cli(workdir, env, *args)
        if code != 0:
            raise SystemExit(f"deployer {' '.join(args)} exited {code}: {err[-500:]}")
        times.append(took)
    return times


def race(workdir: Path, env: dict[str, str], racers: int) -> list[tuple[int, float]]:
    """Losers racing a release that holds the lock: (exit code, seconds) each."""
    holder = subprocess.Popen(
        [sys.executable, "-m", "deployer", "release", f"v-hold-{racers}"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while holder.poll() is None and not _locked(workdir, env):  # until it holds the lock
        time.sleep(0.2)
    started = time.monotonic()
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "deployer", "release", "v-racer"],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(racers)
    ]
    ended: list[tuple[int, float]] = []
    pending = list(runs)
    while pending:  # note each one's own end, whatever order they end in
        for run in list(pending):
            if run.poll() is not None:
                ended.append((run.returncode, time.monotonic() - started))
                pending.remove(run)
        time.sleep(0.01)
    holder.wait()
    return ended


def broken_release(workdir: Path, env: dict[str, str]) -> tuple[int, float, float, str]:
    """Release a build that is broken from boot; when did its gate start, when did it end."""
    started = time.monotonic()
    run = subprocess.Popen(
        [sys.executable, "-m", "deployer", "release", "v-broken"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert run.stderr is not None
    gate_started, error = 0.0, ""
    for line in run.stderr:
        if "to pass its gates" in line and not gate_started:
            gate_started = time.monotonic()
        if line.startswith("error:"):
            error = line.strip()
    code = run.wait()
    ended = time.monotonic()
    return code, ended - started, ended - (gate_started or ended), error


def figure(what: str, times: list[float], goal: str) -> str:
    return (
        f"{what:<17} median {statistics.median(times):.2f} s "
        f"(min {min(times):.2f}, max {max(times):.2f}; goal {goal})"
    )


def _locked(workdir: Path, env: dict[str, str]) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "deployer", "status", "--output", "json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return bool(json.loads(done.stdout).get("lock"))
    except ValueError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", default="fast", choices=["fast", "aws"])
    parser.add_argument(
        "--startup-only", action="store_true", help="Time --help only: no sandbox is started."
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="deployer-clibench-"))
    for name in ("cloudformation", "playbooks"):
        shutil.copytree(REPO / name, workdir / name)
    shutil.copytree(REPO / "examples" / "hello", workdir / "app")
    broken = workdir / "app-broken"
    shutil.copytree(workdir / "app", broken)
    (broken / "BROKEN").write_text("1")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "DEPLOYER_SANDBOX_PROFILE": args.profile,
        "DEPLOYER_SANDBOX_TIME_SCALE": "1.0",
    }
    config = workdir / "deployer.yaml"
    try:
        print(figure("--help:", timed(workdir, env, args.runs, "--help"), "0.3 s"))
        if args.startup_only:
            return
        config.write_text(CONFIG.format(source="app", hold=2))
        code, took, err = cli(workdir, env, "release", "v1")
        if code != 0:
            raise SystemExit(f"the first release failed: {err[-800:]}")
        print(f"first release (sandbox start, infra, bake): {took:.1f} s")
        status = timed(workdir, env, args.runs, "status")
        noop = timed(workdir, env, args.runs, "release", "v1")
        print(figure("status:", status, "0.5 s"))
        print(figure("no-op release:", noop, "1 s"))
        config.write_text(CONFIG.format(source="app", hold=120))  # the holder keeps the lock
        for racers in (5, 20):
            ended = race(workdir, env, racers)
            losers = [t for code, t in ended if code == 3]
            others = [code for code, _ in ended if code != 3]
            print(
                f"{racers} racers vs a held lock: {len(losers)} exited 3, slowest after "
                f"{max(losers):.2f} s, median {statistics.median(losers):.2f} s (goal 2 s)"
                + (f"; other exit codes: {others}" if others else "")
            )
        config.write_text(CONFIG.format(source="app-broken", hold=2))
        code, took, gated, error = broken_release(workdir, env)
        print(
            f"a build answering 500 from boot: exit {code}, rejected {gated:.1f} s after its "
            f"gate began ({took:.1f} s in all; deadline 600 s)"
        )
        print(f"  {error[:220]}")
        print(
            "  (health checks 5 s x 2: the load balancer marks it unhealthy about 10 s after its"
            " first check; gates are evaluated every 2 s)"
        )
    finally:
        subprocess.run(
            [sys.executable, "-m", "deployer", "sandbox", "down"],
            cwd=workdir,
            env=env,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
