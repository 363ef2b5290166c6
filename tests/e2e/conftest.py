"""What the end-to-end modules share: the CLI as a user runs it (a subprocess, JSON out), the
app as users see it over HTTP, and a project with its own sandbox for one module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3

from deployer.sandbox import control
from deployer.sandbox.layout import CREDENTIALS, Layout
from tests.conftest import REPO, copy_project


class Cli:
    """`deployer` in `workdir`, as a user runs it."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.env = dict(env if env is not None else os.environ)

    def __call__(self, *args: str, config: str = "deployer.yaml") -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "deployer", "-c", config, *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def json(self, *args: str, config: str = "deployer.yaml"):
        done = self(*args, "--output", "json", config=config)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def run(workdir, env, *args, config="deployer.yaml", timeout=600):
    """One CLI run with --output json: (exit code, its one JSON document, stderr). Whatever the
    outcome: no traceback, exactly one document, and its exit code is the process's.
    """
    done = subprocess.run(
        [sys.executable, "-m", "deployer", "-c", config, *args, "--output", "json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    document = json.loads(done.stdout)
    assert document["exit_code"] == done.returncode
    assert document["ok"] is (done.returncode == 0)
    return done.returncode, document, done.stderr


def sandbox_client(workdir: Path, service: str) -> Any:
    """A boto3 client of `service` on the sandbox of the project in `workdir`: what AWS says,
    read beside deployer.
    """
    state = control.status(Layout.for_workdir(workdir))
    assert state is not None, f"no sandbox runs for {workdir}"
    return boto3.client(
        service, region_name=state.region, endpoint_url=state.endpoint, **CREDENTIALS
    )


def served(url: str, n: int = 10) -> set[str]:
    """What users get from `url`, asked n times."""
    return {urllib.request.urlopen(url, timeout=5).read().decode().strip() for _ in range(n)}


@contextmanager
def sandboxed_project(tmp_path_factory, name: str, **env: str) -> Iterator[tuple[Path, dict]]:
    """A copy of the sample project with the CLI's environment; its sandbox (started by the
    first command that needs it) is stopped at the end.
    """
    workdir = tmp_path_factory.mktemp(name)
    copy_project(workdir)
    try:
        yield workdir, {**os.environ, "PYTHONPATH": str(REPO), **env}
    finally:
        control.down(Layout.for_workdir(workdir))
