"""Every user data deployer generates does what it says when cloud-init runs it: the builder's
is a shell script that parses (`sh -n`), the fleets' is cloud-config that parses as YAML.
"""

from __future__ import annotations

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
    text = data["UserData"]["Fn::Base64"]
    assert text.startswith("#cloud-config\n")
    document = yaml.safe_load(text)
    assert [f["path"] for f in document["write_files"]] == ["/etc/deployer/boot.env"]
