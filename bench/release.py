"""One sandbox release, measured: wall time per phase and AWS API calls per service.

    python bench/release.py [--time-scale 1.0] [--keep]

Runs in a scratch directory with its own sandbox (stopped at the end unless --keep), so it
never touches your .deployer/. Prints figures; asserts nothing. With --time-scale 1.0 the
sandbox probes targets at the configured interval (5 s), as an ALB would.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from deployer.aws.poller import Poller  # noqa: E402
from deployer.config import load_config  # noqa: E402
from deployer.engine import Engine  # noqa: E402
from deployer.release import Release  # noqa: E402
from deployer.sandbox import control  # noqa: E402
from deployer.sandbox.layout import Layout  # noqa: E402
from deployer.target import open_target  # noqa: E402


def release(workdir: Path, version: str) -> tuple[Engine, dict[str, float], float]:
    loaded = load_config(workdir / "deployer.yaml")
    poller = Poller()
    runtime = open_target(loaded, workdir, poller, lambda _line: None)
    engine = Engine(loaded, runtime, poller, lambda _line: None, workdir)
    started = time.monotonic()
    Release(engine).run(version)
    return engine, dict(engine.phase_seconds), time.monotonic() - started


def table(title: str, rows: dict[str, float | int], unit: str) -> None:
    print(f"\n{title}")
    for key, value in rows.items():
        shown = f"{value:8.2f}" if isinstance(value, float) else f"{value:8d}"
        print(f"  {key:<16}{shown} {unit}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--time-scale", default="1.0", help="sandbox probe time scale")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox running")
    args = parser.parse_args()
    os.environ["DEPLOYER_SANDBOX_TIME_SCALE"] = args.time_scale
    workdir = Path(tempfile.mkdtemp(prefix="deployer-bench-"))
    for name in ("cloudformation", "playbooks", "examples", "deployer.yaml"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, workdir / name)
    layout = Layout.for_workdir(workdir)
    try:
        started = time.monotonic()
        control.up(layout)
        print(
            f"sandbox up: {time.monotonic() - started:.2f} s (probe time scale {args.time_scale})"
        )
        engine, phases, total = release(workdir, "bench-1")
        table("first release (bake + fleet + gate + switch)", phases, "s")
        print(f"  {'total':<16}{total:8.2f} s")
        table("AWS API calls, by service", dict(sorted(engine.runtime.aws.calls.items())), "calls")
        print(f"  {'total':<16}{sum(engine.runtime.aws.calls.values()):8d} calls")
        engine, phases, total = release(workdir, "bench-1")
        print(
            f"\nsame release again (no-op): {total:.2f} s, "
            f"{sum(engine.runtime.aws.calls.values())} API calls"
        )
        engine, phases, total = release(workdir, "bench-2")
        table("second version (image bake, blue kept warm)", phases, "s")
        print(f"  {'total':<16}{total:8.2f} s, {sum(engine.runtime.aws.calls.values())} calls")
    finally:
        if not args.keep:
            control.down(layout)
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
