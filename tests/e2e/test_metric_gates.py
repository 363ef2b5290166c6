"""Green judged against blue from the load balancer's metrics, on CloudWatch's clock.

Users keep using the service throughout. A build that fails one request in ten of `/` (its
health check passes, so only traffic shows it) is rolled back at its first canary step by
the metric gate, which says green's rate, blue's and the p-value; releases of blue's own
build (A/A) pass. The sandbox's CloudWatch publishes each minute a minute late, as AWS does,
so the gate waits for evidence rather than seeing errors at once.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import copy_project
from tests.e2e.conftest import Cli
from tests.e2e.traffic import Users

pytestmark = pytest.mark.e2e

CONFIG = """\
app: hello
environment: metrics
artifact: {{source: {source}}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 120}}
strategy: {{kind: canary, steps: [10, 50, 100], bake_seconds: {hold}}}
gates:
  interval_seconds: 0.5
  metrics: {{min_periods: 3}}
"""
USERS_PER_SECOND = 50
# A modelled minute lasts 1.2 s here, so a period holds 50 times fewer requests than the same
# users would make on AWS: a canary step must hold longer to see one error in ten.
ERRORS_HOLD_S = 40


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("metric-gates")
    copy_project(workdir)
    shutil.copytree(workdir / "app", workdir / "app-errors")
    (workdir / "app-errors" / "ERROR_RATE").write_text("0.1\n")
    (workdir / "deployer.yaml").write_text(CONFIG.format(source="app", hold=3))
    (workdir / "errors.yaml").write_text(CONFIG.format(source="app-errors", hold=ERRORS_HOLD_S))
    cli = Cli(workdir)
    first = cli.json("release", "v1")
    with Users(first["url"], rate=USERS_PER_SECOND) as users:
        yield cli, users
    cli("sandbox", "down")


def events_of(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def metric_verdicts(events):
    return [
        (e["step"], e["gate"], e["verdict"], e["evidence"])
        for e in events
        if e["type"] == "gate_observation" and e["kind"] == "metric"
    ]


def test_releases_of_blues_own_build_are_never_rolled_back(project):
    """A/A: the same image, a new fleet each time (a changed setting rolls one)."""
    cli, users = project
    for run in range(1, 4):
        assert cli("config", "set", "AA_RUN", str(run)).returncode == 0
        events = cli.workdir / f"aa-{run}.jsonl"
        done = cli("release", "v1", "--events", str(events), "--output", "json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["outcome"] == "succeeded"
        judged = metric_verdicts(events_of(events))
        # The gate judged green against blue on real traffic, and found nothing.
        assert any(v == "pass" and "blue_requests" in ev for _, g, v, ev in judged if "error" in g)
        assert not [j for j in judged if j[2] == "fail"]
    assert users.statuses[500] == 0


def test_a_canary_failing_one_request_in_ten_is_rolled_back_at_step_1_by_the_metric_gate(
    project, tmp_path
):
    cli, users = project
    events = cli.workdir / "errors.jsonl"
    failed = cli("release", "v2", "--events", str(events), "--output", "json", config="errors.yaml")
    assert failed.returncode == 1, failed.stderr
    error = json.loads(failed.stdout)["error"]
    assert error["gate"] == "metric error rate" and error["step"] == "step 1: canary 10/100"
    assert "vs blue" in error["message"] and "p=" in error["message"]
    evidence = error["evidence"]
    assert evidence["green_rate_pct"] > evidence["blue_rate_pct"] + 0.5
    assert evidence["p_value"] < 0.01 and evidence["green_errors"] > 0

    seen = events_of(events)
    failing = [v for v in metric_verdicts(seen) if v[2] == "fail"]
    assert failing and failing[-1][0] == "step 1: canary 10/100"
    outcome = seen[-1]
    assert outcome["type"] == "outcome" and "vs blue" in outcome["reason"]
    assert cli.json("status")["live_version"] == "v1"

    picture = tmp_path / "failed.svg"
    drawn = cli.json("report", "latest", "--out", str(picture))
    assert "metric error rate" in drawn["verdict"] and "vs blue" in drawn["verdict"]
    assert 'id="verdict"' in picture.read_text()
