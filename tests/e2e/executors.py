"""What the two scenario modules share (test_both_executors_*.py): one scenario suite, run by
both executors, this process (`local`) and a Step Functions execution (`stepfunctions`). For
each scenario the journal's last record (outcome, phase, step, weights, the failing gate and
step), the listener and what users are served must be the same, whoever ran the release.

Scenarios, on a two-step canary: a pass; a gate failure at each step (a gate alarm the test
fires once the journal shows that step); a failure during the watch; a step the metric rule
cannot judge in time, with `on_inconclusive: rollback`; an abort mid-canary; a pause, then
`promote`. Each releases v2 as a new fleet (a changed setting) over whatever is live. The
scenarios are split over two modules, each with its own sandbox, so that they run side by
side.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.conftest import copy_project
from tests.e2e.conftest import Cli, sandbox_client, served
from tests.e2e.traffic import Users

BASE = """\
app: hello
environment: both
artifact: {{source: app}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 120}}
strategy: {{kind: canary, steps: {steps}, bake_seconds: 1, watch_seconds: {watch}}}
gates:
  interval_seconds: 0.5
  alarms: {alarms}
  metrics: {{enabled: {metrics}, min_periods: 3, min_minute_requests: 2, on_inconclusive: rollback}}
"""
# scenario: (fires the gate alarm at (phase, step index), watch seconds, metric gate on)
SCENARIOS: dict[str, tuple[tuple[str, int] | None, int, bool]] = {
    "pass": (None, 0, False),
    "fails at step 1": (("step", 0), 0, False),
    "fails at step 2": (("step", 1), 0, False),
    "fails during the watch": (("watch", -1), 3, False),
    "inconclusive": (None, 0, True),
    "abort": (None, 0, False),
    "paused, then promoted": (None, 0, False),
}


@contextmanager
def project(workdir) -> Iterator[Cli]:
    """A project with v1 live and users on it, in its own sandbox."""
    copy_project(workdir)
    (workdir / "deployer.yaml").write_text(
        BASE.format(steps="[50, 100]", watch=0, alarms="[]", metrics="false")
    )
    cli = Cli(workdir)
    try:
        first = cli.json("release", "v1")
        with Users(first["url"], rate=10):
            yield cli
    finally:
        cli("sandbox", "down")


def newest(cli: Cli) -> dict | None:
    """The newest journal record, read beside deployer."""
    items = sandbox_client(cli.workdir, "dynamodb").query(
        TableName="deployer-journal",
        KeyConditionExpression="pk = :pk AND begins_with(sk, :r)",
        ExpressionAttributeValues={":pk": {"S": "hello/both"}, ":r": {"S": "release#"}},
        ScanIndexForward=False,
        Limit=1,
    )["Items"]
    return json.loads(items[0]["record"]["S"]) if items else None


class AtStep:
    """Calls `act` once the release in flight is journalled at (phase, step index)."""

    def __init__(
        self, cli: Cli, at: tuple[str, int], act: Callable[[], None], moved: bool = False
    ) -> None:
        self.cli, self.at, self.act, self.moved = cli, at, act, moved
        self.reached = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        stop = time.monotonic() + 180
        while time.monotonic() < stop and not self.reached.is_set():
            record = newest(self.cli)
            if (
                record
                and record["outcome"] == "in_progress"
                and (record["phase"], record["step"]) == self.at
                and (record["weights"] or not self.moved)  # journalled as traffic moves
            ):
                self.act()
                self.reached.set()
                return
            time.sleep(0.1)

    def __enter__(self) -> AtStep:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.reached.set()
        self.thread.join(timeout=5)


def run_scenario(cli: Cli, scenario: str, executor: str) -> dict:
    """One release of v2 (a new fleet: a changed setting) under `scenario`; what the
    journal, the listener, users and the CLI say of it.
    """
    fires_at, watch, metrics = SCENARIOS[scenario]
    alarm = f"gate-{len(scenario)}-{executor}"  # each run its own alarm: no run sees another's
    config = f"{executor}-{scenario.replace(' ', '-')}.yaml"
    (cli.workdir / config).write_text(
        BASE.format(
            steps="[50, pause, 100]" if scenario == "paused, then promoted" else "[50, 100]",
            watch=watch,
            alarms=f"[{alarm}]",
            metrics=str(metrics).lower(),
        )
    )
    cloudwatch = sandbox_client(cli.workdir, "cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="Deployer/Tests",
        MetricName="Fired",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    assert cli("config", "set", "RUN", f"{scenario}-{executor}").returncode == 0
    before = cli.json("status")["live_version"]
    args = ["release", "v2", "--executor", executor]
    done = None
    if scenario == "abort":
        abort_mid_canary(cli, executor, args, config)
    elif scenario == "paused, then promoted":

        def promote() -> None:
            assert cli("promote", config=config).returncode == 0

        with AtStep(cli, ("pause", 0), promote):
            done = cli(*args, "--output", "json", config=config)
    elif fires_at is not None:

        def fire() -> None:
            cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="fired")

        with AtStep(cli, fires_at, fire):
            done = cli(*args, "--output", "json", config=config)
    else:
        done = cli(*args, "--output", "json", config=config)
    now = cli.json("status")
    record = newest(cli)
    assert record is not None and bool(record["execution"]) == (executor == "stepfunctions")
    seen = {
        "outcome": record["outcome"],
        "phase": record["phase"],
        "step": record["step"],
        "weights": sorted(record["weights"].values()),
        "reason": record["reason"].split("': ")[0],  # the gate and the step, as worded
        "live": now["live_version"],
        "live before": before,
        "served": served(now["url"]),
        "lock": now["lock"],
        "exit": done.returncode if done is not None else None,
    }
    if done is not None and done.returncode:
        error = json.loads(done.stdout)["error"]
        seen["error"] = (error["gate"].replace(alarm, "<alarm>"), error["step"])
        seen["reason"] = seen["reason"].replace(alarm, "<alarm>")
    return seen


def abort_mid_canary(cli: Cli, executor: str, args: list[str], config: str) -> None:
    """The local runner's process killed mid-canary; the server's left running. Then abort."""
    detach = ["--detach"] if executor == "stepfunctions" else []
    release = subprocess.Popen(
        [sys.executable, "-m", "deployer", "-c", config, *args, *detach],
        cwd=cli.workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with AtStep(cli, ("step", 0), lambda: None, moved=True) as at:
        assert at.reached.wait(120)
    if executor == "local":
        release.send_signal(signal.SIGKILL)
    release.wait(timeout=60)
    aborted = cli("abort", "--output", "json", config=config)
    assert aborted.returncode == 0, aborted.stderr


EXPECTED = {  # outcome, phase, weights journalled
    "pass": ("succeeded", "done", [0, 100]),
    "fails at step 1": ("failed", "rollback", [50, 50]),
    "fails at step 2": ("failed", "rollback", [0, 100]),
    "fails during the watch": ("failed", "rollback", [0, 100]),
    "inconclusive": ("failed", "rollback", [50, 50]),
    "abort": ("failed", "step", [50, 50]),
    "paused, then promoted": ("succeeded", "done", [0, 100]),
}


def check_both(cli: Cli, scenario: str) -> None:
    local = run_scenario(cli, scenario, "local")
    server = run_scenario(cli, scenario, "stepfunctions")
    before = local.pop("live before")
    server.pop("live before")
    assert server == local
    assert (local["outcome"], local["phase"], local["weights"]) == EXPECTED[scenario]
    live = "v2" if local["outcome"] == "succeeded" else before
    assert local["live"] == live and local["served"] == {f"hello from {live}"}
    assert local["lock"] is None
