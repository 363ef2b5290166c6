"""The team's own checks gate a release, and a fleet that grows or shrinks while a step holds
is not a failing fleet.

- A `before_traffic` hook that exits 1 stops the release before any user traffic: exit 1,
  the previous version still serving, the command, its status and its last lines named.
- A hook that outlives its timeout is ended, with everything it started.
- Auto Scaling adding an instance during a hold (it boots and applies its settings first:
  unhealthy for a while, within its grace period) and then taking two away does not roll a
  good release back.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from tests.conftest import copy_project
from tests.e2e.conftest import sandbox_client
from tests.e2e.test_release_cycle import Cli, served

pytestmark = pytest.mark.e2e

CONFIG = """\
app: hello
environment: hooks
artifact: {{source: app}}
capacity: {{min: 1, desired: 2, max: 4}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 120, grace_seconds: 60}}
strategy: {{kind: canary, steps: [50, 100], bake_seconds: {hold}}}
gates: {{interval_seconds: 0.5}}
verify: {verify}
"""
SMOKE = """\
#!/bin/sh
echo "smoke: $DEPLOYER_VERSION (was $DEPLOYER_PREVIOUS_VERSION) at $DEPLOYER_TEST_URL"
env | grep ^DEPLOYER_ > hook-env.txt
sleep 313.7 &  # something it started and left behind (a number nothing else sleeps)
echo "smoke failed: GET /orders answered 500"
exit 1
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hooks")
    copy_project(workdir)
    (workdir / "smoke.sh").write_text(SMOKE)
    (workdir / "smoke.sh").chmod(0o755)
    (workdir / "deployer.yaml").write_text(CONFIG.format(hold=1, verify="{}"))
    cli = Cli(workdir)
    try:  # a failed first release still takes its sandbox down
        cli.json("release", "v1")
        yield cli
    finally:
        cli("sandbox", "down")


def leftover(marker: str, within_s: float = 10.0) -> list[str]:
    """Processes whose command line holds `marker` still running `within_s` seconds from now
    (a killed process exits when it is next scheduled, which takes a while on a busy machine).
    """
    deadline = time.monotonic() + within_s
    while True:
        found = subprocess.run(
            ["pgrep", "-af", marker], capture_output=True, text=True, check=False
        )
        running = [line for line in found.stdout.splitlines() if "pgrep" not in line]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.5)


def test_a_failing_before_traffic_hook_stops_the_release_before_any_user_traffic(project):
    cli = project
    (cli.workdir / "smoke.yaml").write_text(
        CONFIG.format(hold=1, verify="{before_traffic: ['./smoke.sh']}")
    )
    events = cli.workdir / "smoke.jsonl"
    done = cli("release", "v2", "--events", str(events), "--output", "json", config="smoke.yaml")
    assert done.returncode == 1, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["gate"] == "verify ./smoke.sh" and error["step"] == "before traffic"
    assert "exited 1" in error["message"] and "GET /orders answered 500" in error["message"]
    assert error["evidence"]["last_lines"][-1] == "smoke failed: GET /orders answered 500"
    assert "smoke failed" in done.stderr  # its output streamed as it ran

    seen = [json.loads(line) for line in events.read_text().splitlines()]
    production = [
        e["weights"]
        for e in seen
        if e["type"] == "weights_changed" and e["listener"] == "production"
    ]
    assert all(not w.get("v2") for w in production)  # no user ever reached v2
    hook_env = dict(
        line.split("=", 1) for line in (cli.workdir / "hook-env.txt").read_text().splitlines()
    )
    assert hook_env["DEPLOYER_VERSION"] == "v2" and hook_env["DEPLOYER_PREVIOUS_VERSION"] == "v1"
    assert hook_env["DEPLOYER_STEP"] == "before traffic"
    assert hook_env["DEPLOYER_TEST_URL"].startswith("http://127.0.0.1:")
    assert served(hook_env["DEPLOYER_URL"]) == {"hello from v1"}
    assert cli.json("status")["live_version"] == "v1"
    assert leftover("sleep 313.7") == []  # the hook's group ended with it


def test_a_hook_out_of_time_is_ended_with_everything_it_started(project):
    cli = project
    (cli.workdir / "slow.yaml").write_text(
        CONFIG.format(
            hold=1, verify="{timeout_seconds: 2, after_step: ['sleep 127.3 & sleep 127.4']}"
        )
    )
    done = cli("release", "v2", "--output", "json", config="slow.yaml")
    assert done.returncode == 1, done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["step"] == "step 1: canary 50/100" and "timed out after 2s" in error["message"]
    assert leftover("sleep 127.") == []
    assert cli.json("status")["live_version"] == "v1"


def fleet_group(workdir, release_id: str) -> str:
    cfn = sandbox_client(workdir, "cloudformation")
    for stack in cfn.describe_stacks()["Stacks"]:
        tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if tags.get("deployer:release-id") == release_id and "AutoScalingGroupName" in outputs:
            return outputs["AutoScalingGroupName"]
    raise AssertionError(f"no fleet stack of {release_id}")


def autoscaling(workdir):
    return sandbox_client(workdir, "autoscaling")


def set_desired(workdir, group: str, desired: int) -> None:
    autoscaling(workdir).set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=desired)


def members(workdir, group: str) -> set[str]:
    found = autoscaling(workdir).describe_auto_scaling_groups(AutoScalingGroupNames=[group])
    return {i["InstanceId"] for i in found["AutoScalingGroups"][0]["Instances"]}


def take_away(workdir, group: str, instances: list[str]) -> None:
    """Scale in by these instances (AWS picks at random among equals; the test picks, so that
    the instance left is one that has booted).
    """
    for instance in instances:
        autoscaling(workdir).terminate_instance_in_auto_scaling_group(
            InstanceId=instance, ShouldDecrementDesiredCapacity=True
        )


def wait_for(events, kind: str, **fields) -> dict:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if events.exists():
            # the last line may be half written: only complete lines are events yet
            for line in events.read_text().splitlines(keepends=True):
                if not line.endswith("\n"):
                    break
                event = json.loads(line)
                if event["type"] == kind and all(event.get(k) == v for k, v in fields.items()):
                    return event
        time.sleep(0.1)
    raise AssertionError(f"no {kind} {fields} event")


def test_a_fleet_scaled_out_and_in_while_a_step_holds_is_not_rolled_back(project):
    """A setting rolls a new fleet of v1 (and makes every instance apply it at boot, which
    takes a few seconds); while step 1 holds, Auto Scaling adds an instance, which fails its
    health checks until it has booted, within its grace period; while step 2 holds, Auto
    Scaling takes it away again.
    """
    cli = project
    (cli.workdir / "scaling.yaml").write_text(CONFIG.format(hold=8, verify="{}"))
    assert cli("config", "set", "GREETING", "hi", config="scaling.yaml").returncode == 0
    events = cli.workdir / "scaling.jsonl"
    outcome: dict = {}

    def release() -> None:
        outcome["done"] = cli(
            "release", "v1", "--events", str(events), "--output", "json", config="scaling.yaml"
        )

    running = threading.Thread(target=release)
    running.start()
    release_id = wait_for(events, "release")["release_id"]
    wait_for(events, "phase_started", name="step 1: canary 50/100")
    group = fleet_group(cli.workdir, release_id)
    booted = sorted(members(cli.workdir, group))
    set_desired(cli.workdir, group, 3)
    wait_for(events, "phase_started", name="step 2: all traffic")
    take_away(cli.workdir, group, sorted(members(cli.workdir, group) - set(booted)))
    running.join(300)
    done = outcome["done"]
    assert done.returncode == 0, done.stderr

    seen = [json.loads(line) for line in events.read_text().splitlines()]
    health = [
        e["detail"]
        for e in seen
        if e["type"] == "gate_observation" and e["kind"] == "target-health"
    ]
    assert any("not counted against it" in d for d in health), health[-5:]
    assert cli.json("status")["live_version"] == "v1"
