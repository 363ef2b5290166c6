"""Shared fixtures: a moto server process over HTTP, and the sandbox daemon."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployer.aws.poller import Poller
from deployer.aws.session import AwsContext, make_context

REPO = Path(__file__).resolve().parents[1]
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

# Every sandbox the tests start behaves like AWS (latency, eventual consistency, client tokens,
# SigV4-only S3, ...), at 1/50 of AWS's timing so that a stack takes seconds, not minutes.
# Subprocesses (the CLI under test) inherit these.
os.environ.setdefault("DEPLOYER_SANDBOX_PROFILE", "aws")
os.environ.setdefault("DEPLOYER_SANDBOX_TIME_SCALE", "0.02")
# A builder's own shutdown timer (bake.max_builder_minutes) runs unscaled: the bake's playbook
# runs in real time at any scale, and a scaled 60 minutes (72 s) would end slow bakes midway
# on a busy machine. The tests of the timer turn the scale back on (shutdown_time_scale null).
SHUTDOWN_UNSCALED = json.dumps({"shutdown_time_scale": 1.0})
os.environ.setdefault("DEPLOYER_SANDBOX_BEHAVIOURS", SHUTDOWN_UNSCALED)
# One bake per build per test session: the sandboxes of this run share their images by bake
# key (deployer/sandbox/image_catalog.py), as an AWS account keeps its images. Tests whose
# subject is the bake itself turn it off (NO_IMAGE_CATALOG).
CATALOG_ENV = "DEPLOYER_SANDBOX_IMAGE_CATALOG"
NO_IMAGE_CATALOG = {CATALOG_ENV: ""}


def pytest_configure(config: pytest.Config) -> None:
    """The controller makes the run's image catalog; xdist's workers, started after this,
    inherit its path through the environment.
    """
    if hasattr(config, "workerinput") or os.environ.get(CATALOG_ENV) is not None:
        return
    os.environ[CATALOG_ENV] = tempfile.mkdtemp(prefix="deployer-image-catalog-")
    config.stash[_CATALOG_MADE] = os.environ[CATALOG_ENV]


def pytest_unconfigure(config: pytest.Config) -> None:
    made = config.stash.get(_CATALOG_MADE, "")
    if made:
        shutil.rmtree(made, ignore_errors=True)


_CATALOG_MADE = pytest.StashKey[str]()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, deadline_s: float = 20) -> None:
    stop = time.monotonic() + deadline_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > stop:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="session")
def moto_endpoint():
    """A plain moto server process on loopback: the AWS API over HTTP, nothing more."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{endpoint}/moto-api/")
        yield endpoint
    finally:
        end(process)


def end(process: subprocess.Popen) -> None:
    """Terminate a server the tests started; kill it if it does not stop (a busy werkzeug
    server may sit in a request for a while).
    """
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def aws(moto_endpoint) -> AwsContext:
    """A fresh, empty AWS for each test."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request).close()
    return make_context("us-east-1", endpoint_url=moto_endpoint, credentials=CREDENTIALS)


@pytest.fixture
def fast_poller() -> Poller:
    return Poller(first_interval=0.05, max_interval=0.3)


def copy_project(workdir: Path) -> None:
    """What a user's repository holds: deployer.yaml, the app, templates and playbooks."""
    for name in ("cloudformation", "playbooks"):
        shutil.copytree(REPO / name, workdir / name)
    shutil.copytree(
        REPO / "examples" / "hello", workdir / "app", ignore=shutil.ignore_patterns("__pycache__")
    )


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """os.environ with `values`, for what a module-scoped fixture starts (xdist runs one test
    at a time in each worker process).
    """
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def sandbox(request, tmp_path_factory):
    """The sandbox daemon (moto + hosts + prober + fronts) in a scratch working directory.
    A module whose subject is the bake sets IMAGE_CATALOG = False: its sandbox bakes alone.
    A module sets SANDBOX_BEHAVIOURS (a dict) to change named behaviours of its sandbox.
    """
    from deployer.sandbox import control
    from deployer.sandbox.layout import Layout

    workdir = tmp_path_factory.mktemp("sandbox")
    layout = Layout.for_workdir(workdir)
    changes: dict[str, str] = {}
    if not getattr(request.module, "IMAGE_CATALOG", True):
        changes.update(NO_IMAGE_CATALOG)
    behaviours = getattr(request.module, "SANDBOX_BEHAVIOURS", None)
    if behaviours:
        base = json.loads(os.environ.get("DEPLOYER_SANDBOX_BEHAVIOURS") or "{}")
        changes["DEPLOYER_SANDBOX_BEHAVIOURS"] = json.dumps({**base, **behaviours})
    with environment(**changes):
        state, _ = control.up(layout)
    try:
        yield layout, state
    finally:
        control.down(layout)


@pytest.fixture
def sandbox_aws(sandbox) -> AwsContext:
    from deployer.sandbox.layout import CREDENTIALS as SANDBOX_CREDENTIALS

    _, state = sandbox
    return make_context(state.region, endpoint_url=state.endpoint, credentials=SANDBOX_CREDENTIALS)
