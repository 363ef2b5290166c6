"""A release that outlives its CI job: with executor: stepfunctions, the traffic steps, holds,
gates and restore run as a Step Functions execution (the sandbox runs it, as AWS would), and
the CLI only follows it.

Users keep using the service throughout. The CLI is killed (-9) mid-canary and the execution
finishes alone, seen from another shell; a rerun of the same version attaches to it, never
starts a second; a build failing for users is rolled back by the execution alone, which
journals why; `abort` stops a running execution and puts traffic back.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import copy_project
from tests.e2e.conftest import Cli, sandbox_client, served
from tests.e2e.traffic import Users

pytestmark = pytest.mark.e2e

CONFIG = """\
app: hello
environment: aws-run
artifact: {source: app}
executor: stepfunctions
health_check: {interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 120}
strategy: {kind: canary, steps: [10, 50, 100], bake_seconds: 3}
gates:
  interval_seconds: 0.5
  metrics: {min_periods: 3, min_minute_requests: 2, on_inconclusive: proceed}
"""
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:hello-aws-run-runner"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("server-side")
    copy_project(workdir)
    (workdir / "deployer.yaml").write_text(CONFIG)
    (workdir / "paused.yaml").write_text(
        CONFIG.replace("steps: [10, 50, 100]", "steps: [10, pause, 100], pause_timeout: 300")
    )
    cli = Cli(workdir)
    try:  # a first release has no users to protect: it runs here, as with executor: local
        first = cli.json("release", "v1")
        assert first["execution"] == ""
        with Users(first["url"], rate=20) as users:
            yield cli, users, first["url"]
    finally:
        cli("sandbox", "down")


def executions(cli: Cli) -> list[dict]:
    sfn = sandbox_client(cli.workdir, "stepfunctions")
    return sfn.list_executions(stateMachineArn=MACHINE)["executions"]


def wait_for_end(cli: Cli, arn: str, deadline_s: float = 120) -> dict:
    sfn = sandbox_client(cli.workdir, "stepfunctions")
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        found = sfn.describe_execution(executionArn=arn)
        if found["status"] != "RUNNING":
            return found
        time.sleep(0.5)
    raise AssertionError(f"{arn} still running after {deadline_s}s")


def status(cli: Cli) -> dict:
    return cli.json("status")


def test_a_cli_killed_mid_canary_changes_nothing_and_a_rerun_attaches(project):
    cli, users, url = project
    assert cli("config", "set", "BUILD", "2").returncode == 0  # a new fleet of the same image
    assert runner_in_plan(cli, "v2") == "create"  # `plan` shows the state machine's stack
    release = subprocess.Popen(
        [sys.executable, "-m", "deployer", "release", "v2"],
        cwd=cli.workdir,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert release.stderr is not None
    for line in release.stderr:  # the follower says each step as the execution starts it
        if "traffic: step 1" in line:
            break
    release.send_signal(signal.SIGKILL)
    release.wait(timeout=10)

    seen = status(cli)  # from another shell: the execution, its step, its ARN
    assert seen["execution"]["status"] == "RUNNING"
    assert seen["execution"]["arn"] == seen["in_flight"]["execution"]
    assert "runs in AWS" in seen["advice"]

    again = cli("release", "v2", "--output", "json")
    assert again.returncode == 0, again.stderr
    done = json.loads(again.stdout)
    assert done["outcome"] == "succeeded" and done["execution"] == seen["execution"]["arn"]
    assert "not starting another" in again.stderr
    assert [e["status"] for e in executions(cli)] == ["SUCCEEDED"]

    after = status(cli)
    assert after["live_version"] == "v2" and after["in_flight"] is None and after["lock"] is None
    assert after["last"]["execution"] == done["execution"]
    assert served(url) == {"hello from v2"}
    assert users.statuses[500] == 0
    assert runner_in_plan(cli, "v3") == "unchanged"


def runner_in_plan(cli: Cli, version: str) -> str:
    rows = cli.json("plan", version)["infra"]
    return next(r["action"] for r in rows if r["stack"] == "hello-aws-run-runner")


def test_a_build_failing_for_users_is_rolled_back_by_the_execution_alone(project):
    cli, users, url = project
    assert cli("config", "set", "ERROR_RATE", "0.5").returncode == 0
    try:
        detached = cli("release", "v3", "--detach", "--output", "json")
        assert detached.returncode == 0, detached.stderr
        started = json.loads(detached.stdout)
        assert started["outcome"] == "in_progress"
        # Nobody follows: the execution judges, restores and journals on its own.
        ended = wait_for_end(cli, started["execution"])
    finally:
        assert cli("config", "unset", "ERROR_RATE").returncode == 0
    assert ended["status"] == "FAILED" and ended["error"] == "GateFailed"
    last = status(cli)
    assert last["live_version"] == "v2" and last["lock"] is None
    assert last["last"]["outcome"] == "failed"
    assert "metric error rate" in last["last"]["reason"]
    assert "users' requests failed vs blue" in last["last"]["reason"]
    assert served(url) == {"hello from v2"}

    followed = cli("follow", started["release_id"], "--output", "json")
    assert followed.returncode == 1, followed.stderr
    error = json.loads(followed.stdout)["error"]
    assert error["gate"] == "metric error rate" and error["step"] == "step 1: canary 10/100"


def test_abort_stops_a_running_execution_and_puts_traffic_back(project):
    cli, users, url = project
    detached = cli.json("release", "v4", "--detach")
    aborted = cli("abort", "--output", "json")
    assert aborted.returncode == 0, aborted.stderr
    assert wait_for_end(cli, detached["execution"])["status"] == "ABORTED"
    after = status(cli)
    assert after["live_version"] == "v2" and after["in_flight"] is None
    assert after["last"]["reason"] == "aborted by `deployer abort`"
    assert served(url) == {"hello from v2"}
    again = cli("abort", "--output", "json")  # nothing left to abort: said, nothing changed
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False


def paused(cli: Cli, deadline_s: float = 120) -> dict:
    """The in-flight release once its execution waits in the pause (the token journalled)."""
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        now = status(cli)
        if now["in_flight"] and now["in_flight"]["phase"] == "pause":
            return now
        time.sleep(0.5)
    raise AssertionError("the release never reached its pause")


def test_an_abort_during_a_pause_stops_the_execution_and_restores_the_previous_fleet(project):
    """(A pause that `promote` ends: tests/e2e/test_both_executors_holds.py, on both.)"""
    cli, users, url = project
    live = status(cli)["live_version"]
    waiting = cli.json("release", "v6", "--detach", config="paused.yaml")
    seen = paused(cli)
    assert seen["execution"]["step"] == "pause after step 1"
    assert cli("abort", "--output", "json").returncode == 0
    assert wait_for_end(cli, waiting["execution"])["status"] == "ABORTED"
    after = status(cli)
    assert after["live_version"] == live and after["in_flight"] is None and after["lock"] is None
    assert served(url) == {f"hello from {live}"}
    again = cli("promote", "--output", "json")  # nothing paused any more: said, no change
    assert again.returncode == 0 and json.loads(again.stdout)["changed"] is False
