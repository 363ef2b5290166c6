"""Fixtures of the integration tests."""

import pytest

from deployer.sandbox import control
from deployer.sandbox.layout import Layout
from tests.conftest import copy_project


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A user's project with its own sandbox, for one test module."""
    workdir = tmp_path_factory.mktemp("scenarios")
    copy_project(workdir)
    yield workdir
    control.down(Layout.for_workdir(workdir))
