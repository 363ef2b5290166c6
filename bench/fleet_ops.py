"""How many AWS calls `deployer logs` and `deployer exec` make, by fleet size, on the sandbox.

    python bench/fleet_ops.py [--sizes 2,16] [--time-scale 0.2] [--json]

For each size: a fleet of that many instances is released (one environment per size, one
image for all), then, in the same process as the CLI would run them:
  logs       `deployer logs --since 10m` of the live fleet (finding the fleet included; every
             line of every instance, each of which has logged)
  logs -f    one more ask of `--follow` (what each poll costs)
  exec       `deployer exec -- uname -a` on the live fleet (permission preflight included)
and the API calls of each, by operation. Waits poll ListCommands, so their count grows with
how long the command runs (the sandbox's Run Command delivery takes 1 s, scaled), not with
the fleet: the other calls are fixed, or grow by one page per 50 instances. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deployer.aws.poller import Poll, Poller  # noqa: E402
from deployer.config.loading import load_config  # noqa: E402
from deployer.ops import fleet_logs as fleet_logs  # noqa: E402
from deployer.ops.fleet_exec import run_exec  # noqa: E402
from deployer.release.engine import Engine  # noqa: E402
from deployer.release.loop import Release  # noqa: E402
from deployer.sandbox import control  # noqa: E402
from deployer.sandbox.layout import Layout  # noqa: E402
from deployer.target import open_target  # noqa: E402

CONFIG = """\
app: bench
environment: size{size}
artifact: {{source: app}}
capacity: {{min: 1, desired: {size}, max: {size}}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 600}}
strategy: {{kind: all_at_once, bake_seconds: 1}}
gates: {{interval_seconds: 1}}
"""


def engine_for(workdir: Path, size: int) -> Engine:
    loaded = load_config(workdir / f"size{size}.yaml")
    poller = Poller()
    runtime = open_target(loaded, workdir, poller, lambda _line: None)
    return Engine(loaded, runtime, poller, lambda _line: None, workdir)


def wait_for_lines(engine: Engine, size: int) -> None:
    """Until every instance's app line is in the log group (the sandbox's hosts configure the
    agent beside the app when there are no settings: their first lines may lag a little).
    """
    query = fleet_logs.query_for(engine, "live", "10m", None, None)

    def check() -> Poll[None]:
        seen = {line.instance_id for line in fleet_logs.read(engine, query) if line.source == "app"}
        return Poll(len(seen) >= size, f"{len(seen)}/{size} instances logged")

    Poller(first_interval=0.5, max_interval=2).until("the app's lines", check, 300)


def counted(engine: Engine, action: Callable[[], Any]) -> tuple[Any, Counter[str]]:
    before = Counter(engine.runtime.aws.operations)
    result = action()
    return result, Counter(engine.runtime.aws.operations) - before


def measure(workdir: Path, size: int) -> dict[str, Any]:
    (workdir / f"size{size}.yaml").write_text(CONFIG.format(size=size))
    Release(engine_for(workdir, size)).run("v1")
    engine = engine_for(workdir, size)
    wait_for_lines(engine, size)
    engine = engine_for(workdir, size)

    def logs() -> list[Any]:
        query = fleet_logs.query_for(engine, "live", "10m", None, None)
        return fleet_logs.read(engine, query)

    lines, logs_calls = counted(engine, logs)
    query = fleet_logs.query_for(engine, "live", "10m", None, None)

    def one_follow_ask() -> int:
        def stop(_seconds: float) -> None:
            raise KeyboardInterrupt

        return fleet_logs.follow(engine, query, lambda _line: None, sleep=stop)

    _, follow_calls = counted(engine, one_follow_ask)
    engine = engine_for(workdir, size)
    waits_before = len(engine.waits)
    result, exec_calls = counted(
        engine, lambda: run_exec(engine, ("uname", "-a"), "live", "50", "0", 600)
    )
    polls = sum(w.polls for w in engine.waits[waits_before:])
    return {
        "instances": size,
        "logs": {"lines": len(lines), "calls": sum(logs_calls.values()), "by": dict(logs_calls)},
        "logs_follow_ask": {"calls": sum(follow_calls.values()), "by": dict(follow_calls)},
        "exec": {
            "succeeded": sum(1 for r in result.results if r.ok),
            "calls": sum(exec_calls.values()),
            "list_commands_polls": polls,
            "by": dict(exec_calls),
        },
    }


def show(figures: dict[str, Any]) -> None:
    print(f"\nfleet of {figures['instances']} instances")
    logs, ask, run = figures["logs"], figures["logs_follow_ask"], figures["exec"]
    print(f"  logs --since 10m: {logs['calls']} calls for {logs['lines']} lines")
    for operation, calls in sorted(logs["by"].items()):
        print(f"      {calls:3}  {operation}")
    print(f"  logs --follow, each ask: {ask['calls']} call(s) ({', '.join(ask['by'])})")
    print(
        f"  exec -- uname -a: {run['calls']} calls, {run['succeeded']}/{figures['instances']} "
        f"succeeded, {run['list_commands_polls']} ListCommands polls"
    )
    for operation, calls in sorted(run["by"].items()):
        print(f"      {calls:3}  {operation}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="2,16", help="fleet sizes, comma-separated")
    parser.add_argument("--time-scale", type=float, default=0.2)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    os.environ["DEPLOYER_SANDBOX_TIME_SCALE"] = str(args.time_scale)
    os.environ.setdefault("DEPLOYER_SANDBOX_PROFILE", "aws")
    workdir = Path(tempfile.mkdtemp(prefix="deployer-bench-fleet-ops-"))
    for name in ("cloudformation", "playbooks"):
        shutil.copytree(REPO / name, workdir / name)
    shutil.copytree(
        REPO / "examples" / "hello", workdir / "app", ignore=shutil.ignore_patterns("__pycache__")
    )
    try:
        results = [measure(workdir, int(size)) for size in args.sizes.split(",")]
    finally:
        control.down(Layout.for_workdir(workdir))
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"sandbox profile {os.environ['DEPLOYER_SANDBOX_PROFILE']}, time scale {args.time_scale}")
    for figures in results:
        show(figures)


if __name__ == "__main__":
    main()
