"""Operating the fleet without SSH, as a user does it on the sandbox: after a release, its
lines in the log group (`deployer logs`, `--follow` until Ctrl-C), a command on every live
instance (`deployer exec`) recorded in `history`, a broken build's own last words in its
failure, and a secure setting found in no log stream.

One sandbox for the module: v1 is released once (with a secure setting planted first), and a
build that logs an error and answers 500 is released after the other scenarios.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import pytest

from deployer.sandbox import control
from deployer.sandbox.layout import CREDENTIALS, Layout
from tests.conftest import REPO, copy_project

pytestmark = pytest.mark.e2e

CONFIG = """\
app: shop
environment: ops
artifact: {{source: {source}}}
capacity: {{min: 1, desired: 2, max: 4}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 120}}
strategy: {{kind: all_at_once, bake_seconds: 1}}
gates:
  http: [{{path: {path}, expect_status: 200}}]
  interval_seconds: 0.5
"""
SECRET = f"s3cr3t-{secrets.token_hex(8)}"
CAUSE = "KeyError: 'DATABASE_URL'"


class Project:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env = {**os.environ, "PYTHONPATH": str(REPO)}

    def run(self, *args: str, config: str = "deployer.yaml", stdin: str | None = None):
        """One CLI run with --output json: (exit code, its one JSON document, stderr)."""
        # the output option before `--`, where exec's command starts
        cut = args.index("--") if "--" in args else len(args)
        args = (*args[:cut], "--output", "json", *args[cut:])
        done = subprocess.run(
            [sys.executable, "-m", "deployer", "-c", config, *args],
            cwd=self.workdir,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert "Traceback" not in done.stderr, done.stderr
        document = json.loads(done.stdout)
        assert document["exit_code"] == done.returncode
        return done.returncode, document, done.stderr

    def client(self, service: str):
        state = control.status(Layout.for_workdir(self.workdir))
        return boto3.client(
            service, region_name=state.region, endpoint_url=state.endpoint, **CREDENTIALS
        )

    def instances(self, version: str) -> list[str]:
        reservations = self.client("ec2").describe_instances(
            Filters=[
                {"Name": "tag:deployer:app", "Values": ["shop"]},
                {"Name": "tag:deployer:version", "Values": [version]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )["Reservations"]
        return sorted(i["InstanceId"] for r in reservations for i in r["Instances"])


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fleet-ops")
    copy_project(workdir)
    (workdir / "deployer.yaml").write_text(CONFIG.format(source="app", path="/healthz"))
    shutil.copytree(workdir / "app", workdir / "app-errors")
    (workdir / "app-errors" / "ERRORS").write_text(CAUSE + "\n")
    (workdir / "errors.yaml").write_text(CONFIG.format(source="app-errors", path="/"))
    ops = Project(workdir)
    try:
        code, _, stderr = ops.run(
            "config", "set", "DB_PASSWORD", "--secure", "--stdin", stdin=SECRET
        )
        assert code == 0, stderr
        code, released, stderr = ops.run("release", "v1")
        assert code == 0, stderr
        yield ops
    finally:
        control.down(Layout.for_workdir(workdir))


def test_logs_show_each_live_instances_lines_named_by_instance_and_version(project):
    live = project.instances("v1")
    assert len(live) == 2
    code, found, _ = project.run("logs", "--since", "5m")
    assert code == 0, found
    assert (found["version"], found["fleet"], found["log_group"]) == (
        "v1",
        "live",
        "/deployer/shop/ops",
    )
    app_lines = [line for line in found["lines"] if line["source"] == "app"]
    assert {line["instance"] for line in app_lines} == set(live)
    assert all(line["version"] == "v1" for line in found["lines"])
    assert any(line["message"].startswith("hello v1 listening") for line in app_lines)
    sources = {line["source"] for line in found["lines"]}
    assert {"app", "configure", "cloud-init"} <= sources
    times = [line["time"] for line in found["lines"]]
    assert times == sorted(times)  # interleaved by time

    code, one, _ = project.run(
        "logs", "v1", "--since", "5m", "--instance", live[0], "--grep", "listening"
    )
    assert code == 0
    assert [(line["instance"], line["source"]) for line in one["lines"]] == [(live[0], "app")]


def test_the_log_group_is_the_service_stacks_with_its_retention(project):
    groups = project.client("logs").describe_log_groups(logGroupNamePrefix="/deployer/shop/")
    assert [(g["logGroupName"], g.get("retentionInDays")) for g in groups["logGroups"]] == [
        ("/deployer/shop/ops", 30)
    ]


def test_the_agent_publishes_memory_and_disk_use_per_fleet(project):
    metrics = project.client("cloudwatch").list_metrics(Namespace="deployer")["Metrics"]
    per_fleet = {
        m["MetricName"]
        for m in metrics
        if [d["Name"] for d in m["Dimensions"]] == ["AutoScalingGroupName"]
        and m["Dimensions"][0]["Value"].startswith("shop-ops-fleet-v1-")
    }
    assert per_fleet == {"mem_used_percent", "disk_used_percent"}


def test_follow_shows_a_new_line_within_seconds_and_ctrl_c_ends_it_with_0(project):
    instance = project.instances("v1")[0]
    host = control.host_of(Layout.for_workdir(project.workdir), instance)
    follower = subprocess.Popen(
        [sys.executable, "-m", "deployer", "logs", "--follow", "--since", "1m"],
        cwd=project.workdir,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in follower.stdout], daemon=True).start()
    marker = f"a new line {secrets.token_hex(4)}"
    try:
        time.sleep(1.0)
        with open(Path(host["root"]) / "var/log/deployer/app.log", "a") as app_log:
            app_log.write(marker + "\n")  # as the app would print it
        written = time.monotonic()
        seen = ""
        while marker not in seen and time.monotonic() - written < 20:
            try:
                seen = lines.get(timeout=1)
            except queue.Empty:
                continue
        assert marker in seen and instance in seen and " v1 " in seen
    finally:
        follower.send_signal(signal.SIGINT)
        _, stderr = follower.communicate(timeout=30)
    assert follower.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_exec_runs_on_every_live_instance_and_a_failure_names_each(project):
    live = project.instances("v1")
    code, done, stderr = project.run("exec", "--", "uname", "-a")
    assert code == 0, stderr
    assert "on v1 (live" in stderr
    assert [(r["instance"], r["status"], r["exit_code"]) for r in done["results"]] == [
        (i, "Success", 0) for i in live
    ]
    assert all(r["output"].startswith(os.uname().sysname) for r in done["results"])

    code, failed, stderr = project.run("exec", "--", "false")
    assert code == 1
    # exit 1's meaning for exec, not a release's ("rolled back", "traffic") that shares the code
    assert "exit 1: the command failed on an instance; nothing else was changed" in stderr
    assert "rolled back" not in stderr
    message = failed["error"]["message"]
    assert all(f"{i} (exit 1)" in message for i in live)
    assert [r["status"] for r in failed["error"]["exec"]["results"]] == ["Failed", "Failed"]

    # One at a time, no error tolerated: after the first failure the other is not sent.
    code, stopped, _ = project.run("exec", "--max-concurrency", "1", "--", "false")
    assert code == 1
    assert sorted(r["status"] for r in stopped["error"]["exec"]["results"]) == [
        "Cancelled",
        "Failed",
    ]
    assert all(i in stopped["error"]["message"] for i in live)

    code, history, _ = project.run("history")
    assert [(x["command"], x["outcome"]) for x in history["execs"][:3]] == [
        (["false"], "failed"),
        (["false"], "failed"),
        (["uname", "-a"], "succeeded"),
    ]
    assert all(set(x["instances"]) == set(live) for x in history["execs"][:3])


def test_a_build_that_logs_an_error_and_answers_500_fails_with_that_line(project):
    code, failed, stderr = project.run("release", "v2", config="errors.yaml")
    assert code == 1, stderr
    assert "exit 1: release failed its gates and was rolled back cleanly" in stderr
    assert "`exec`" not in stderr
    message = failed["error"]["message"]
    assert "gate 'http GET /' failed at step 'before switch': status 500" in message
    assert f"ERROR GET /: {CAUSE}" in message and "Last lines from i-" in message
    quoted = failed["error"]["last_lines"]
    assert quoted["version"] == "v2"
    assert any(
        f"ERROR GET /: {CAUSE}" in line for lines in quoted["instances"].values() for line in lines
    )
    code, status, _ = project.run("status")
    assert status["live_version"] == "v1"


def test_a_secure_setting_reaches_the_app_and_appears_in_no_log_stream(project):
    instance = project.instances("v1")[0]
    host = control.host_of(Layout.for_workdir(project.workdir), instance)
    assert SECRET in (Path(host["root"]) / "etc/deployer/app.env").read_text()  # it was applied

    logs = project.client("logs")
    streams = [
        s["logStreamName"]
        for page in logs.get_paginator("describe_log_streams").paginate(
            logGroupName="/deployer/shop/ops"
        )
        for s in page["logStreams"]
    ]
    assert any(s.endswith("/configure") for s in streams)  # the configure unit's log is shipped
    messages = [
        e["message"]
        for page in logs.get_paginator("filter_log_events").paginate(
            logGroupName="/deployer/shop/ops"
        )
        for e in page["events"]
    ]
    assert any("Read the environment's settings" in m for m in messages)
    assert not [m for m in messages if SECRET in m]
    assert not [m for m in messages if "X-Amz-Signature" in m]  # nor a presigned artifact URL
