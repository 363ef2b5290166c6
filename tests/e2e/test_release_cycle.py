"""End to end, as a user runs it: the `deployer` CLI against the sandbox, checked over HTTP.

release v1 -> release v2 -> broken v3 rejected (traffic stays on v2) -> rollback -> v1 served.
"""

import os
import shutil

import pytest

from tests.conftest import NO_IMAGE_CATALOG, copy_project
from tests.e2e.conftest import Cli, served

pytestmark = pytest.mark.e2e

CONFIG = """\
app: hello
environment: e2e
artifact:
  source: {source}
capacity: {{min: 2, desired: 2, max: 4}}
health_check:
  path: /healthz
  interval_seconds: 5
  timeout_seconds: 2
  healthy_threshold: 2
  unhealthy_threshold: 2
  deadline_seconds: 20
rollback_window: 1h
strategy: {{bake_seconds: 1}}
gates: {{interval_seconds: 0.5}}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("project")
    copy_project(workdir)
    shutil.copytree(workdir / "app", workdir / "app-broken")
    (workdir / "app-broken" / "BROKEN").write_text("health checks fail in this build\n")
    (workdir / "deployer.yaml").write_text(CONFIG.format(source="app"))
    (workdir / "broken.yaml").write_text(CONFIG.format(source="app-broken"))
    # The one cold release cycle: this module's sandbox bakes for itself.
    cli = Cli(workdir, {**os.environ, **NO_IMAGE_CATALOG})
    yield cli
    cli("sandbox", "down")


def test_bad_input_exits_2_and_touches_nothing(project):
    (project.workdir / "bad.yaml").write_text(CONFIG.format(source="app") + "colour: blue\n")
    done = project("release", "v1", config="bad.yaml")
    assert done.returncode == 2
    assert "bad.yaml: colour: unknown field" in done.stderr
    done = project("release", "v 1")
    assert done.returncode == 2
    assert "version 'v 1'" in done.stderr
    assert not (project.workdir / ".deployer" / "sandbox" / "state.json").exists()


def test_release_reject_and_rollback_cycle(project):
    first = project.json("release", "v1")
    url = first["url"]
    assert served(url) == {"hello from v1"}
    assert project.json("status")["live_version"] == "v1"

    second = project.json("release", "v2")
    assert served(second["url"]) == {"hello from v2"}
    # One build, baked once: v2 is another name for it, given to its instances at boot.
    assert second["images"] == first["images"]

    rejected = project("release", "v3", "--output", "json", config="broken.yaml")
    assert rejected.returncode == 1
    assert "gate 'target-health' failed" in rejected.stderr
    assert "Target.ResponseCodeMismatch" in rejected.stderr
    assert served(url) == {"hello from v2"}
    status = project.json("status")
    assert status["live_version"] == "v2"
    roles = {f["version"]: (f["role"], f["desired"]) for f in status["fleets"]}
    assert roles == {"v2": ("live", 2), "v1": ("warm", 2), "v3": ("cold", 0)}  # kept to debug

    rolled = project.json("rollback")
    assert rolled["version"] == "v1"
    assert served(url) == {"hello from v1"}
    assert project.json("status")["live_version"] == "v1"

    history = project.json("history")["releases"]
    assert [(r["kind"], r["version"], r["outcome"]) for r in history] == [
        ("rollback", "v1", "succeeded"),
        ("release", "v3", "failed"),
        ("release", "v2", "succeeded"),
        ("release", "v1", "succeeded"),
    ]


def test_plan_says_what_a_release_would_do_and_changes_nothing(project):
    before = project.json("status")
    planned = project.json("plan", "v9")
    assert planned["bake"] is False and planned["noop"] is False  # the build's image exists
    assert planned["blue"] == before["live_version"]
    assert [s["name"] for s in planned["steps"]] == ["step 1: all traffic"]
    timing = {row["what"]: row["seconds"] for row in planned["timing"]}
    assert timing["step 1: all traffic"] >= 4 * 60  # AWS's clock
    assert planned["predicted_seconds"] == sum(timing.values())
    assert project.json("status") == before


def test_releasing_the_live_version_again_reuses_everything(project):
    before = project.json("status")
    again = project.json("release", before["live_version"])
    assert again["outcome"] == "noop"
    after = project.json("status")
    assert after["fleets"] == before["fleets"]
    assert served(after["url"]) == {f"hello from {before['live_version']}"}


def test_a_template_that_fails_lint_exits_2_before_any_change(project):
    fleet = project.workdir / "cloudformation" / "fleet.yaml"
    original = fleet.read_text()
    broken = "Type: AWS::EC2::LaunchTemplat"  # an error (E3006); a warning would not stop it
    fleet.write_text(original.replace("Type: AWS::EC2::LaunchTemplate", broken, 1))
    try:
        before = project.json("status")
        done = project("release", "v9")
        assert done.returncode == 2
        assert "fleet.yaml" in done.stderr and "E3006" in done.stderr
        assert project.json("status")["fleets"] == before["fleets"]
    finally:
        fleet.write_text(original)
