"""How fast a failing release gets traffic back to blue, on the sandbox.

    python bench/rollback.py [--trials 5] [--interval 2]

For each trial: release a good v1 (once), then release v2 and, once v2 takes traffic, break
every v2 instance (its health endpoint starts answering 500). Prints, per trial:
  detection  time from the break to deployer's gate failing (goal: <= one gate interval)
  restore    time from the gate failing to the listener pointing at blue again (goal: <= 1 s)
and the time of a manual `rollback` (one listener change). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deployer.aws.poller import Poller  # noqa: E402
from deployer.config.loading import load_config  # noqa: E402
from deployer.core.model import Phase  # noqa: E402
from deployer.errors import GateFailed  # noqa: E402
from deployer.ops.rollback import rollback  # noqa: E402
from deployer.release.engine import Engine  # noqa: E402
from deployer.release.loop import Release  # noqa: E402
from deployer.sandbox import control  # noqa: E402
from deployer.sandbox.layout import Layout  # noqa: E402
from deployer.target import open_target  # noqa: E402

CONFIG = """\
app: bench
environment: rollback
artifact: {{source: app}}
capacity: {{min: 1, desired: 2, max: 4}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 60}}
strategy: {{kind: all_at_once, bake_seconds: 30, on_failure: scale_to_zero}}
gates: {{interval_seconds: {interval}}}
"""


def engine_for(workdir: Path) -> Engine:
    loaded = load_config(workdir / "deployer.yaml")
    poller = Poller()
    runtime = open_target(loaded, workdir, poller, lambda _line: None)
    return Engine(loaded, runtime, poller, lambda _line: None, workdir)


def break_green_later(
    engine: Engine, layout: Layout, broke_at: list[float], interval: float
) -> None:
    """Once green takes traffic, wait a random time (so the break lands anywhere within the
    gate interval), then break its instances.
    """

    def on_phase(record: object) -> None:
        if getattr(record, "phase", None) is Phase.STEP and getattr(record, "phase_done", False):
            group = engine.elb.target_health(record.target_group_arn)  # type: ignore[attr-defined]
            ids = [t.target_id for t in group]

            def breaker() -> None:
                time.sleep(0.5 + random.random() * interval)
                for instance_id in ids:
                    root = control.host_of(layout, instance_id)
                    if root:
                        Path(root["root"], "opt/app/current/BROKEN").write_text("bench\n")
                broke_at.append(engine.clock())

            threading.Thread(target=breaker, daemon=True).start()

    engine.on_phase = on_phase


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--interval", type=float, default=2.0, help="gates.interval_seconds")
    args = parser.parse_args()
    os.environ.setdefault("DEPLOYER_SANDBOX_TIME_SCALE", "0.2")
    workdir = Path(tempfile.mkdtemp(prefix="deployer-bench-rollback-"))
    for name in ("cloudformation", "playbooks"):
        shutil.copytree(REPO / name, workdir / name)
    shutil.copytree(REPO / "examples" / "hello", workdir / "app")
    (workdir / "deployer.yaml").write_text(CONFIG.format(interval=args.interval))
    layout = Layout.for_workdir(workdir)
    detections, restores = [], []
    try:
        Release(engine_for(workdir)).run("v1")
        for trial in range(args.trials):
            engine = engine_for(workdir)
            broke_at: list[float] = []
            break_green_later(engine, layout, broke_at, args.interval)
            try:
                Release(engine).run("v2")
                print(f"trial {trial + 1}: v2 was not rejected")
                continue
            except GateFailed:
                pass
            assert engine.gate_failed_at is not None and broke_at
            detections.append(engine.gate_failed_at - broke_at[0])
            restores.append(engine.phase_seconds["restore"])
            print(
                f"trial {trial + 1}: detection {detections[-1]:.2f} s, "
                f"restore {restores[-1] * 1000:.0f} ms"
            )
        Release(engine_for(workdir)).run("v3")
        manual = engine_for(workdir)
        rollback(manual, None, None)
        print(f"\ngate interval {args.interval} s, {len(detections)} trials")
        for name, values, unit, scale in (
            ("detection", detections, "s", 1),
            ("restore", restores, "ms", 1000),
        ):
            if values:
                print(
                    f"  {name:<10} min {min(values) * scale:7.2f}  median "
                    f"{statistics.median(values) * scale:7.2f}  max {max(values) * scale:7.2f} "
                    f"{unit}"
                )
        print(
            f"  manual `rollback` listener change: {manual.phase_seconds['switch'] * 1000:.0f} ms"
        )
    finally:
        control.down(layout)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
