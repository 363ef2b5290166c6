"""How fast a failing green is caught and traffic is back on blue, on AWS's clock; and how
often a good green is rolled back by mistake.

    python bench/detect.py [--profile aws] [--time-scale 0.25] [--rate 20] [--json]
                           [--cases 0.5@10,0.05@100] [--aa 20] [--aa-rates 20,200] [--keep]

In a scratch directory with its own sandbox, it releases the sample app (v1, blue), then
drives steady user traffic through the load balancer (`--rate` requests per *modelled*
second: the real rate is rate / time scale, so a minute holds as many requests as it would
on AWS), and:

- for each case `RATE@WEIGHT`: rolls a new green (a changed setting: same image, no bake),
  waits until green has WEIGHT % of the traffic (10: the first canary step; 100: the watch
  after the last step), then makes green fail RATE of its requests (the hello app reads
  its ERROR_RATE file on every request), and measures the modelled time from that moment
  to the ModifyRule that puts traffic back on blue, and how many users' requests failed
  from that moment until the run ended (`failed_user_requests`);
- at each rate of `--aa-rates` (modelled requests/second), runs `--aa N` releases of blue's
  own build (green = blue's image and settings but one marker) with every gate on, counts
  the rollbacks and gives the releases' modelled durations: a busy service shows evidence of
  safety sooner, a quiet one holds until its steps' deadlines. Each rate also says the rate
  the sandbox achieved: the sandbox's front serves a few hundred real requests a second at
  most, so a high modelled rate needs a longer time scale.

Modelled seconds are wall seconds / time scale. The gates poll every 5 modelled seconds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deployer.sandbox import control  # noqa: E402
from deployer.sandbox.layout import Layout  # noqa: E402

CONFIG = """\
app: detect
environment: bench
artifact: {{source: app}}
capacity: {{min: 2, desired: 2, max: 4}}
health_check: {{interval_seconds: 5, timeout_seconds: 3, deadline_seconds: 600}}
strategy: {{kind: canary, steps: {steps}, bake_seconds: {hold}, watch_seconds: {watch}}}
gates: {{interval_seconds: {interval}, max_failures: 0}}
"""
CASE_HOLD_S = 600.0  # modelled: a case's step (or watch) lasts ten minutes unless caught
AA_STEPS = "[10, 50, 100]"
DEFAULT_CASES = "0.5@10,0.05@10,0.01@10,0.5@100,0.05@100,0.01@100"


class Traffic:
    """Paced requests over keep-alive connections, from a few threads."""

    def __init__(self, url: str, real_rate: float, threads: int = 4) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._pause = threads / real_rate
        self._stop = threading.Event()
        self.sent = 0
        self.failed_at: list[float] = []  # when a user's request failed (no 2xx/3xx answer)
        self._started = time.monotonic()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def achieved_real_rate(self) -> float:
        return self.sent / max(1e-9, time.monotonic() - self._started)

    def failures_between(self, start: float, end: float) -> int:
        return sum(1 for at in list(self.failed_at) if start <= at <= end)

    def _run(self) -> None:
        connection: http.client.HTTPConnection | None = None
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(self._host, self._port, timeout=5)
                connection.request("GET", "/")
                answer = connection.getresponse()
                answer.read()
                self.sent += 1
                if answer.status >= 400:
                    self.failed_at.append(time.time())
            except (OSError, http.client.HTTPException):
                self.sent += 1
                self.failed_at.append(time.time())
                if connection is not None:
                    connection.close()
                connection = None
            next_at += self._pause
            self._stop.wait(max(0.0, next_at - time.monotonic()))


def cli(workdir: Path, *args: str, config: str = "deployer.yaml") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deployer", "-c", config, *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )


def write_config(workdir: Path, name: str, steps: str, hold: float, watch: float, scale: float):
    interval = round(max(0.1, 5 * scale), 2)
    (workdir / name).write_text(
        CONFIG.format(
            steps=steps,
            hold=math.ceil(max(hold, interval)),  # a hold sees at least one gate interval
            watch=round(watch),
            interval=interval,
        )
    )


def events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(path: Path, match: Any, process: subprocess.Popen[str], deadline_s: float):
    ends = time.monotonic() + deadline_s
    while time.monotonic() < ends:
        for event in events(path):
            if match(event):
                return event
        if process.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def green_roots(layout: Layout, release_events: list[dict[str, Any]]) -> list[Path]:
    """The app directories of green's instances (the sandbox hosts of its target group)."""
    import boto3

    from deployer.sandbox.layout import CREDENTIALS

    state = control.status(layout)
    assert state is not None
    release_id = next(e["release_id"] for e in release_events if e["type"] == "release")
    cfn = boto3.client(
        "cloudformation", region_name=state.region, endpoint_url=state.endpoint, **CREDENTIALS
    )
    asg = boto3.client(
        "autoscaling", region_name=state.region, endpoint_url=state.endpoint, **CREDENTIALS
    )
    for stack in cfn.describe_stacks()["Stacks"]:
        tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if tags.get("deployer:release-id") == release_id and "AutoScalingGroupName" in outputs:
            group = asg.describe_auto_scaling_groups(
                AutoScalingGroupNames=[outputs["AutoScalingGroupName"]]
            )["AutoScalingGroups"][0]
            roots = []
            for instance in group["Instances"]:
                host = control.host_of(layout, instance["InstanceId"])
                if host:
                    roots.append(Path(host["root"]) / "opt/app/current")
            return roots
    return []


def run_case(
    workdir: Path, layout: Layout, scale: float, rate: float, weight: int, n: int, users: Traffic
):
    """One failing green: RATE of its requests fail from the moment it has WEIGHT %."""
    name = f"case-{n}.yaml"
    if weight >= 100:  # all traffic at once, then the watch
        write_config(workdir, name, "[100]", 5 * scale, CASE_HOLD_S * scale, scale)
    else:
        write_config(workdir, name, f"[{weight}, 100]", CASE_HOLD_S * scale, 0, scale)
    cli(workdir, "config", "set", "BENCH_CASE", str(n), config=name)
    path = workdir / f"case-{n}.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "deployer", "-c", name, "release", "v1", "--events", str(path)],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )

    def green_has_its_weight(event: dict[str, Any]) -> bool:
        if weight >= 100:
            return event["type"] == "phase_started" and event["phase"] == "watch"
        return (
            event["type"] == "phase_started"
            and event["phase"] == "step"
            and event["name"].startswith("step 1")
        )

    started = wait_for(path, green_has_its_weight, process, 1800)
    if started is None:
        process.wait()
        return {"error_rate": rate, "weight": weight, "detected": False, "note": "never started"}
    for root in green_roots(layout, events(path)):
        (root / "ERROR_RATE").write_text(f"{rate}\n")
    injected = time.time()
    code = process.wait()
    seen = events(path)
    failing = [e for e in seen if e["type"] == "gate_observation" and e["passed"] is False]
    restored = next(
        (e for e in seen if e["type"] == "phase_finished" and e["phase"] == "rollback"),
        None,
    )
    result: dict[str, Any] = {
        "error_rate": rate,
        "weight": weight,
        "detected": code == 1,
        "failed_user_requests": users.failures_between(injected, time.time()),
    }
    if code == 1 and restored is not None:
        result["modelled_s"] = round((stamp(restored["ts"]) - injected) / scale, 1)
        reason = str(seen[-1].get("reason", ""))
        result["detected_by"] = reason.split("'")[1] if reason.startswith("gate '") else None
        result["detected_modelled_s"] = (
            round((stamp(failing[-1]["ts"]) - injected) / scale, 1) if failing else None
        )
        result["reason"] = seen[-1].get("reason", "")
    return result


def stamp(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def run_aa(workdir: Path, scale: float, runs: int, rate: float, url: str) -> dict[str, Any]:
    """`runs` A/A releases under `rate` modelled requests/second of users."""
    write_config(workdir, "aa.yaml", AA_STEPS, 5 * scale, 0, scale)
    outcomes: list[dict[str, Any]] = []
    with Traffic(url, rate / scale) as users:
        for n in range(runs):
            cli(workdir, "config", "set", "BENCH_AA", f"{rate:g}-{n}", config="aa.yaml")
            started = time.monotonic()
            done = cli(workdir, "release", "v1", "--output", "json", config="aa.yaml")
            reason = ""
            if done.returncode:
                try:
                    reason = json.loads(done.stdout)["error"]["message"]
                except (ValueError, KeyError):
                    reason = done.stderr[-300:]
            outcomes.append(
                {
                    "exit_code": done.returncode,
                    "modelled_s": round((time.monotonic() - started) / scale, 1),
                    "reason": reason,
                }
            )
        achieved = users.achieved_real_rate() * scale
    durations = sorted(float(o["modelled_s"]) for o in outcomes if o["exit_code"] == 0)
    return {
        "modelled_requests_per_s": rate,
        "achieved_modelled_requests_per_s": round(achieved, 1),
        "runs": runs,
        "false_rollbacks": sum(1 for o in outcomes if o["exit_code"] == 1),
        "median_modelled_s": durations[len(durations) // 2] if durations else None,
        "outcomes": outcomes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="aws", choices=["aws", "fast"])
    parser.add_argument("--time-scale", type=float, default=0.25)
    parser.add_argument("--rate", type=float, default=20.0, help="modelled requests/second")
    parser.add_argument("--cases", default=DEFAULT_CASES, help="RATE@WEIGHT,...")
    parser.add_argument("--aa", type=int, default=20, help="A/A releases at each rate")
    parser.add_argument(
        "--aa-rates", default="20,200", help="modelled requests/second of the A/A releases"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running")
    args = parser.parse_args()
    scale = args.time_scale
    os.environ["DEPLOYER_SANDBOX_TIME_SCALE"] = str(scale)
    os.environ["DEPLOYER_SANDBOX_PROFILE"] = args.profile
    cases = [
        (float(rate), int(weight))
        for rate, weight in (c.split("@") for c in args.cases.split(",") if c)
    ]
    workdir = Path(tempfile.mkdtemp(prefix="deployer-detect-"))
    for name in ("cloudformation", "playbooks"):
        shutil.copytree(REPO / name, workdir / name)
    shutil.copytree(REPO / "examples" / "hello", workdir / "app")
    write_config(workdir, "deployer.yaml", "[100]", 5 * scale, 0, scale)
    layout = Layout.for_workdir(workdir)
    report: dict[str, Any] = {
        "profile": args.profile,
        "time_scale": scale,
        "modelled_requests_per_s": args.rate,
    }
    try:
        first = cli(workdir, "release", "v1", "--output", "json")
        if first.returncode:
            raise SystemExit(f"the first release failed: {first.stderr[-2000:]}")
        url = json.loads(first.stdout)["url"]
        # A modelled second lasts `scale` real seconds and must hold RATE requests.
        real_rate = args.rate / scale
        report["real_requests_per_s"] = round(real_rate, 1)
        with Traffic(url, real_rate) as users:
            report["cases"] = [
                run_case(workdir, layout, scale, rate, weight, n, users)
                for n, (rate, weight) in enumerate(cases)
            ]
            report["achieved_modelled_requests_per_s"] = round(
                users.achieved_real_rate() * scale, 1
            )
        report["aa"] = [
            run_aa(workdir, scale, args.aa, float(rate), url)
            for rate in args.aa_rates.split(",")
            if rate and args.aa
        ]
        report["false_rollbacks"] = sum(batch["false_rollbacks"] for batch in report["aa"])
    finally:
        if not args.keep:
            control.down(layout)
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"profile {args.profile}, time scale {scale}, {args.rate:g} requests per modelled "
        f"second ({report['real_requests_per_s']:g}/s real)"
    )
    print(f"\n  {'errors':>7} {'weight':>7} {'detected':>9} {'to restore':>11} {'failed':>7}  by")
    for case in report["cases"]:
        took = f"{case['modelled_s']:.0f} s" if "modelled_s" in case else "-"
        print(
            f"  {case['error_rate'] * 100:>6g}% {case['weight']:>6}% "
            f"{'yes' if case['detected'] else 'no':>9} {took:>11} "
            f"{case['failed_user_requests']:>7}  {case.get('detected_by') or ''}"
        )
    for batch in report["aa"]:
        median = batch["median_modelled_s"]
        print(
            f"\nA/A at {batch['modelled_requests_per_s']:g} requests/s (achieved "
            f"{batch['achieved_modelled_requests_per_s']:g}): {batch['false_rollbacks']} false "
            f"rollback(s) in {batch['runs']} releases; median "
            f"{'-' if median is None else f'{median:.0f} s'} modelled"
        )
        for outcome in batch["outcomes"]:
            if outcome["exit_code"]:
                print(f"  exit {outcome['exit_code']}: {outcome['reason'][:160]}")


if __name__ == "__main__":
    main()
