"""deployer in CI, as a pipeline consumes it: `--events` JSON lines while it runs, GitHub's
step summary, notifications to a webhook, and the timeline picture of a canary that failed.

release v1 (events on stdout) -> v2 -> canary v3 whose alarm fires once it has traffic
(rolled back) -> report of v3 -> rollback to v1.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, HTTPServer

import boto3
import jsonschema
import pytest

from tests.conftest import CREDENTIALS, REPO, copy_project, free_port
from tests.e2e.conftest import Cli

pytestmark = pytest.mark.e2e

SCHEMA = json.loads((REPO / "deployer" / "output" / "events.schema.json").read_text())
ALARM = "hello-ci-v3-errors"

CONFIG = """\
app: hello
environment: ci
artifact: {{source: app}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 120}}
strategy: {{bake_seconds: 2, steps: [10, 50, 100]}}
gates: {{interval_seconds: 0.5, alarms: {alarms}}}
notify:
  - json://127.0.0.1:{port}/hook
  - env:DEPLOYER_TEST_BROKEN_HOOK
"""


class Receiver:
    """A plain JSON webhook on loopback: what Apprise's json:// posts, kept in order."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                outer.received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> list[dict]:
        taken, self.received = self.received, []
        return taken


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ci")
    copy_project(workdir)
    receiver = Receiver()
    (workdir / "deployer.yaml").write_text(CONFIG.format(alarms="[]", port=receiver.port))
    cli = Cli(workdir)
    # A second webhook that refuses connections, with a password in its URL.
    cli.env["DEPLOYER_TEST_BROKEN_HOOK"] = f"json://user:s3cr3tpass@127.0.0.1:{free_port()}/x"
    cli.env["GITHUB_STEP_SUMMARY"] = str(workdir / "summary.md")
    cli.env["GITHUB_OUTPUT"] = str(workdir / "outputs.txt")
    yield cli, receiver
    cli("sandbox", "down")
    receiver.server.shutdown()


def lines_of(text: str) -> list[dict]:
    events = [json.loads(line) for line in text.splitlines()]
    for event in events:
        jsonschema.validate(event, SCHEMA)
    return events


def test_release_streams_events_writes_a_summary_and_notifies(ci):
    cli, receiver = ci
    done = cli("release", "v1", "--events", "-")
    assert done.returncode == 0, done.stderr
    events = lines_of(done.stdout)  # stdout holds nothing but events
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "outcome"
    assert events[0]["version"] == "v1" and len(events[0]["config_digest"]) == 64
    started = {e["name"] for e in events if e["type"] == "phase_started"}
    finished = {e["name"] for e in events if e["type"] == "phase_finished"}
    assert {"preflight", "infra", "bake", "fleet", "gate", "retire"} <= finished == started
    assert any(e["type"] == "gate_observation" and e["passed"] for e in events)
    production = [
        e["weights"]
        for e in events
        if e["type"] == "weights_changed" and e["listener"] == "production"
    ]
    assert production == [{"v1": 100}]
    assert events[-1]["ok"] and events[-1]["exit_code"] == 0 and events[-1]["url"]
    # The human side went to stderr: progress, the phase table and the result line.
    assert "v1 is live" in done.stderr and "bake" in done.stderr

    summary = (cli.workdir / "summary.md").read_text()
    assert "deployer release v1" in summary and "succeeded" in summary
    assert "| phase | seconds | outcome |" in summary and "| bake |" in summary
    assert "deployer rollback" in summary
    outputs = dict(
        line.split("=", 1) for line in (cli.workdir / "outputs.txt").read_text().splitlines()
    )
    assert outputs["exit_code"] == "0" and outputs["url"] == events[-1]["url"]

    notes = wait_for(receiver, 2)
    assert [n["type"] for n in notes] == ["info", "success"]
    assert "release v1 of hello/ci started" in notes[0]["title"]
    assert "succeeded" in notes[1]["title"] and "url: http://" in notes[1]["message"]
    # The refusing webhook was reported, its password masked, and the release went on.
    assert "notify:" in done.stderr and "s3cr3tpass" not in done.stderr + done.stdout


def test_a_failed_canary_is_rolled_back_notified_and_drawn(ci):
    cli, receiver = ci
    assert cli("release", "v2").returncode == 0
    receiver.take()
    endpoint = json.loads(cli("sandbox", "status", "--output", "json").stdout)["endpoint"]
    cloudwatch = boto3.client(
        "cloudwatch", region_name="us-east-1", endpoint_url=endpoint, **CREDENTIALS
    )
    cloudwatch.put_metric_alarm(
        AlarmName=ALARM,
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )
    config = cli.workdir / "canary.yaml"
    port = receiver.port
    config.write_text(CONFIG.format(alarms=f"[{ALARM}]", port=port))
    stream = cli.workdir / "v3-events.jsonl"
    run = subprocess.Popen(
        [sys.executable, "-m", "deployer", "-c", str(config), "release", "v3"]
        + ["--strategy", "canary", "--events", str(stream)],
        cwd=cli.workdir,
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # A dashboard's view: follow the stream; once v3 takes traffic, its alarm fires.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        seen = [json.loads(x) for x in stream.read_text().splitlines()] if stream.exists() else []
        if any(
            e["type"] == "weights_changed"
            and e["listener"] == "production"
            and e["weights"].get("v3", 0) > 0
            for e in seen
        ):
            cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="test")
            break
        time.sleep(0.2)
    _, stderr = run.communicate(timeout=300)
    assert run.returncode == 1, stderr
    assert f"gate 'alarm {ALARM}' failed" in stderr

    events = lines_of(stream.read_text())
    shares = [
        e["weights"]
        for e in events
        if e["type"] == "weights_changed" and e["listener"] == "production"
    ]
    assert shares[0] == {"v3": 10, "v2": 90} and shares[-1] == {"v2": 100, "v1": 0}
    assert any(e["type"] == "phase_finished" and e["phase"] == "rollback" for e in events)
    assert events[-1]["type"] == "outcome" and events[-1]["exit_code"] == 1
    notes = wait_for(receiver, 2)
    assert [n["type"] for n in notes] == ["info", "warning"]
    assert "failed (exit 1)" in notes[1]["title"] and ALARM in notes[1]["message"]

    picture = cli.workdir / "t.svg"
    drawn = cli.json("report", "latest", "--out", str(picture))
    assert set(drawn["versions"]) == {"v3", "v2", "v1"} and drawn["rollback"] is True
    ids = {node.get("id", "") for node in ET.parse(picture).iter()}
    assert {"weights:v3", "weights:v2", "gate-pass", "gate-fail", "failure", "rollback"} <= ids
    assert any(i.startswith("phase:step 1") for i in ids)
    texts = "".join(node.text or "" for node in ET.parse(picture).iter())
    assert "v3" in texts and "failed, rolled back" in texts
    png = cli.workdir / "t.png"
    assert cli("report", "latest", "--out", str(png)).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rollback_notifies_and_a_bad_events_target_changes_nothing(ci):
    cli, receiver = ci
    receiver.take()
    done = cli.json("rollback")
    assert done["changed"] and done["version"] == "v1"
    notes = wait_for(receiver, 2)
    assert [n["type"] for n in notes] == ["info", "warning"]
    assert "rollback" in notes[1]["title"]

    both = cli("release", "v4", "--events", "-", "--output", "json")
    assert both.returncode == 2 and json.loads(both.stdout)["error"]["kind"] == "BadInput"
    nowhere = cli("release", "v4", "--events", "/nonexistent/dir/events.jsonl")
    assert nowhere.returncode == 2 and "/nonexistent/dir/events.jsonl" in nowhere.stderr
    assert cli.json("status")["live_version"] == "v1"


def wait_for(receiver: Receiver, count: int, seconds: float = 15) -> list[dict]:
    """Notifications go out in the background; the run waits for them before it exits."""
    deadline = time.monotonic() + seconds
    while len(receiver.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return receiver.take()
