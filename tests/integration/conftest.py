"""Fixtures of the integration tests."""

import json

import pytest

from deployer.sandbox import control
from deployer.sandbox.layout import Layout
from tests.conftest import copy_project

# An account whose EC2 quotas were raised: a scenario module runs up to eight environments
# at once, each with a VPC and an Elastic IP (AWS's defaults allow 5 of each per Region).
RAISED_QUOTAS = {"quotas": {"vpcs": 20, "addresses": 20}, "shutdown_time_scale": 1.0}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A user's project with its own sandbox, for one test module."""
    workdir = tmp_path_factory.mktemp("scenarios")
    copy_project(workdir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEPLOYER_SANDBOX_BEHAVIOURS", json.dumps(RAISED_QUOTAS))
        yield workdir
        control.down(Layout.for_workdir(workdir))
