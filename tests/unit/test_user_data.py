"""Every user data deployer generates does what it says when cloud-init runs it: the builder's
is a shell script that parses (`sh -n`), the fleets' is cloud-config that parses as YAML.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from deployer.bake.baker import user_data
from tests.cfn import load_template
from tests.conftest import REPO


@pytest.mark.parametrize("minutes", [10, 60, 1440])
def test_the_builders_shutdown_script_parses_as_sh_and_arms_the_timer(minutes):
    script = user_data(minutes)
    assert script.startswith("#!/bin/sh\n")
    sh = shutil.which("sh") or "/bin/sh"
    checked = subprocess.run([sh, "-n"], input=script, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    # Run it, with a `shutdown` that only says what it was asked: the timer is armed.
    shown = subprocess.run(
        [sh, "-c", f'shutdown() {{ echo "$@"; }}\n{script.split(chr(10), 1)[1]}'],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"-h +{minutes} deployer: ")


def test_the_fleets_user_data_is_cloud_config():
    template = load_template(REPO / "cloudformation" / "fleet.yaml")
    data = template["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    condition, with_logs, without = data["UserData"]["Fn::Base64"]  # !If [HasLogGroup, ...]
    assert condition == "HasLogGroup"
    for text in (with_logs, without):
        assert text.startswith("#cloud-config\n")
    plain = yaml.safe_load(without)
    assert [f["path"] for f in plain["write_files"]] == ["/etc/deployer/boot.env"]
    assert "VERSION=${Version}" in plain["write_files"][0]["content"]  # the label, at boot
    logged = yaml.safe_load(with_logs)
    paths = [f["path"] for f in logged["write_files"]]
    assert paths == ["/etc/deployer/boot.env", "/etc/deployer/cloudwatch-agent.json"]
    # The agent's configuration is JSON once CloudFormation has substituted it (${!x} -> ${x}).
    agent = logged["write_files"][1]["content"].replace("${!", "${")
    config = json.loads(agent.replace("${LogGroupName}", "g").replace("${Version}", "v1"))
    streams = [
        f["log_stream_name"] for f in config["logs"]["logs_collected"]["files"]["collect_list"]
    ]
    assert streams == [
        "v1/{instance_id}/app",
        "v1/{instance_id}/configure",
        "v1/{instance_id}/cloud-init",
    ]
    assert config["metrics"]["append_dimensions"]["InstanceId"] == "${aws:InstanceId}"
    assert "amazon-cloudwatch-agent-ctl" in str(logged["runcmd"][0][0])
