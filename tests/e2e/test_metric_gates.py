"""Green judged against blue from the load balancer's metrics, on CloudWatch's clock, from
users' requests only.

Users keep using the service throughout, and deployer keeps checking green through the test
listener (which the load balancer counts as green's requests, as AWS does). A build that
fails 2 % of `/` (its health check passes, so only traffic shows it) is rolled back at its
first canary step by the metric gate, which says green's and blue's users' requests, without
deployer's checks; one whose workers reset 1 connection in 10 is rolled back naming the
connection errors (the load balancer's 502s, which the targets' 5xx count leaves out).
Releases of blue's own build (A/A) are never rolled back: with this little traffic each step
is inconclusive and proceeds, said plainly, unless `on_inconclusive: rollback`. The
sandbox's CloudWatch publishes each minute a minute late, as AWS does.
"""

from __future__ import annotations

import json

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
  metrics: {{min_periods: 3, min_minute_requests: 2, on_inconclusive: {policy}}}
"""
USERS_PER_SECOND = 50
# A modelled minute lasts 1.2 s here, so a period holds 50 times fewer requests than the same
# users would make on AWS: a canary step may hold longer to see one error in fifty (it ends
# at the failure).
ERRORS_HOLD_S = 90


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("metric-gates")
    copy_project(workdir)
    # The faulty builds are blue's build with a setting (ERROR_RATE, RESET_RATE: the app's
    # environment, applied at boot), so no test here bakes an image of its own.
    for name, source, hold, policy in (
        ("deployer.yaml", "app", 3, "proceed"),
        ("strict.yaml", "app", 3, "rollback"),
        ("errors.yaml", "app", ERRORS_HOLD_S, "proceed"),
    ):
        (workdir / name).write_text(CONFIG.format(source=source, hold=hold, policy=policy))
    cli = Cli(workdir)
    try:  # a failed first release still takes its sandbox down
        first = cli.json("release", "v1")
        with Users(first["url"], rate=USERS_PER_SECOND) as users:
            yield cli, users
    finally:
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
    for run in range(1, 3):
        assert cli("config", "set", "AA_RUN", str(run)).returncode == 0
        events = cli.workdir / f"aa-{run}.jsonl"
        done = cli("release", "v1", "--events", str(events), "--output", "json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["outcome"] == "succeeded"
        judged = metric_verdicts(events_of(events))
        # The gate judged green against blue on users' requests and found no harm; a canary
        # of this few requests cannot show safety either, so each step ends inconclusive,
        # said plainly, and the release proceeds (gates.metrics.on_inconclusive: proceed).
        assert any("blue_requests" in ev for _, g, _v, ev in judged if "error" in g)
        assert not [j for j in judged if j[2] == "fail"]
        said = [ev for _, _g, v, ev in judged if v == "inconclusive"]
        assert said and all(ev["on_inconclusive"] == "proceed" for ev in said)
        assert "inconclusive:" in done.stderr and "proceeding" in done.stderr
    assert users.statuses[500] == 0


def test_a_canary_failing_2_percent_is_rolled_back_at_step_1_on_users_requests_alone(
    project, tmp_path
):
    cli, users = project
    events = cli.workdir / "errors.jsonl"
    assert cli("config", "set", "ERROR_RATE", "0.02").returncode == 0
    try:
        failed = cli(
            "release", "v2", "--events", str(events), "--output", "json", config="errors.yaml"
        )
    finally:
        assert cli("config", "unset", "ERROR_RATE").returncode == 0
    assert failed.returncode == 1, failed.stderr
    error = json.loads(failed.stdout)["error"]
    assert error["gate"] == "metric error rate" and error["step"] == "step 1: canary 10/100"
    assert "users' requests" in error["message"] and "vs blue" in error["message"]
    assert "p=" in error["message"] and "deployer's own checks not counted" in error["message"]
    evidence = error["evidence"]
    assert evidence["green_rate_pct"] > evidence["blue_rate_pct"] + 0.5
    assert evidence["p_value"] < 0.01 and evidence["green_errors"] > 0
    # Users' requests only: no more than users sent to v2 (give or take a check counted on
    # the other side of a minute's edge), never the ~2 checks a second deployer made. A
    # request the load balancer answered itself (502, 504) or the user gave up on (a busy
    # machine) may have been v2's too: the load balancer counts it for the target it chose.
    to_green = users.bodies["hello from v2"] + users.bodies["error from v2"]
    unattributed = users.statuses[0] + users.statuses[502] + users.statuses[504]
    assert 0 < evidence["green_requests"] <= to_green + unattributed + 2
    assert evidence["probes_excluded"] > 0

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


def test_a_canary_resetting_connections_is_rolled_back_naming_the_connection_errors(project):
    cli, _ = project
    assert cli("config", "set", "RESET_RATE", "0.1").returncode == 0
    try:
        failed = cli("release", "v3", "--output", "json", config="errors.yaml")
    finally:
        assert cli("config", "unset", "RESET_RATE").returncode == 0
    assert failed.returncode == 1, failed.stderr
    error = json.loads(failed.stdout)["error"]
    assert error["gate"] == "metric error rate", error
    assert "connection errors" in error["message"]
    assert error["evidence"]["green_connection_errors"] > 0
    assert cli.json("status")["live_version"] == "v1"


def test_an_inconclusive_step_rolls_back_when_the_policy_says_so(project):
    cli, _ = project
    assert cli("config", "set", "AA_RUN", "strict").returncode == 0
    done = cli("release", "v1", "--output", "json", config="strict.yaml")
    assert done.returncode == 1, done.stderr
    error = json.loads(done.stdout)["error"]
    assert "inconclusive" in error["message"] and "on_inconclusive: rollback" in error["message"]
    assert error["step"] == "step 1: canary 10/100"
    assert cli.json("status")["live_version"] == "v1"
