"""A build that passes its health checks and answers its users 500 is caught by the fleet's
own 5xx alarm, with no alarm configured: the sandbox's load balancer publishes the ALB's
metrics per target group and evaluates the alarms the fleet stack made on them, on
CloudWatch's clock (the step holds for the alarm's window and the publication delay).
"""

from __future__ import annotations

import json
import shutil
import urllib.request

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
strategy: {{kind: canary, steps: [20, 100], bake_seconds: 6}}
gates:
  interval_seconds: 0.5
  default_alarms: {{target_5xx_count: 3}}
  metrics: {{enabled: false}}  # the alarm alone: test_metric_gates judges green against blue

"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("metrics")
    copy_project(workdir)
    shutil.copytree(workdir / "app", workdir / "app-errors")
    (workdir / "app-errors" / "ERRORS").write_text("GET / answers 500\n")
    (workdir / "deployer.yaml").write_text(CONFIG.format(source="app"))
    (workdir / "errors.yaml").write_text(CONFIG.format(source="app-errors"))
    cli = Cli(workdir)
    yield cli
    cli("sandbox", "down")


def test_a_canary_answering_500_is_rolled_back_by_its_default_5xx_alarm(project):
    first = project.json("release", "v1")
    with Users(first["url"], rate=20) as users:  # a steady 20 requests a second
        failed = project("release", "v2", "--output", "json", config="errors.yaml")
    seen = users.statuses
    assert failed.returncode == 1, failed.stderr
    error = json.loads(failed.stdout)["error"]["message"]
    assert "gate 'alarm hello-metrics-fleet-v2-" in error and "Target5xxAlarm" in error
    assert "step 1: canary 20/100" in error
    assert seen.get(500, 0) >= 3 and seen.get(200, 0) > 0  # users saw v2's errors, briefly
    status = project.json("status")
    assert status["live_version"] == "v1"
    with urllib.request.urlopen(first["url"], timeout=5) as answer:
        assert answer.read().decode().strip() == "hello from v1"
