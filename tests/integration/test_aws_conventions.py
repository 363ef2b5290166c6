"""Region and credentials as AWS's SDKs take them, against a moto server standing in for AWS
(AWS_ENDPOINT_URL): the region from the environment or the profile, a profile set aside
for the environment's credentials (OIDC in CI), and credentials too short for a release.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from deployer.errors import Unreachable
from deployer.release.preflight import check_credentials_last
from tests.conftest import copy_project

pytestmark = pytest.mark.integration

CONFIG = """\
app: hello
environment: conventions
target: {target}
artifact: {{source: app}}
strategy: {{test_listener_cidr: 203.0.113.7/32}}  # no public-address lookup: no internet here
"""


@pytest.fixture
def project(tmp_path: Path, moto_endpoint: str):
    copy_project(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        HOME=str(home),
        AWS_CONFIG_FILE=str(home / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_MAX_ATTEMPTS="2",
    )

    def run(target: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
        (tmp_path / "deployer.yaml").write_text(CONFIG.format(target=target))
        merged = {**env, **extra_env}
        for key in [k for k, v in merged.items() if v == ""]:
            del merged[key]
        return subprocess.run(
            [sys.executable, "-m", "deployer", *args],
            cwd=tmp_path,
            env=merged,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    run.home = home  # type: ignore[attr-defined]
    return run


def test_the_region_comes_from_aws_region_when_the_config_has_none(project):
    done = project("{kind: aws}", "plan", "v1", "--output", "json", AWS_REGION="eu-west-1")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["region"] == "eu-west-1" and plan["target"] == "aws eu-west-1"

    done = project("{kind: aws}", "plan", "v1", "-o", "json", AWS_DEFAULT_REGION="ap-south-1")
    assert json.loads(done.stdout)["region"] == "ap-south-1"

    explicit = "{kind: aws, region: us-west-2}"
    done = project(explicit, "plan", "v1", "-o", "json", AWS_REGION="eu-west-1")
    assert json.loads(done.stdout)["region"] == "us-west-2"  # the file wins


def test_the_region_comes_from_the_profile_last(project):
    (project.home / "config").write_text(
        "[profile deploy]\nregion = eu-north-1\n"
        "aws_access_key_id = testing\naws_secret_access_key = testing\n"
    )
    done = project(
        "{kind: aws, profile: deploy}",
        "plan",
        "v1",
        "-o",
        "json",
        AWS_ACCESS_KEY_ID="",
        AWS_SECRET_ACCESS_KEY="",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["region"] == "eu-north-1"


def test_no_region_anywhere_is_bad_input_naming_every_source(project):
    done = project("{kind: aws}", "plan", "v1", "-o", "json")
    assert done.returncode == 2
    message = json.loads(done.stdout)["error"]["message"]
    assert "deployer.yaml: target.region: no AWS region" in message
    for source in ("AWS_REGION", "AWS_DEFAULT_REGION", "profile"):
        assert source in message


def test_a_profile_is_set_aside_for_credentials_in_the_environment(project):
    # No such profile exists: used, it would fail; environment credentials (OIDC) win.
    done = project("{kind: aws, region: eu-west-1, profile: laptop}", "plan", "v1", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert "target.profile 'laptop' is ignored" in done.stderr
    assert "AWS_ACCESS_KEY_ID" in done.stderr


def test_credentials_that_end_before_the_worst_case_stop_the_release(project, moto_endpoint):
    soon = (datetime.now(UTC) + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = project(
        "{kind: aws, region: eu-west-1}",
        "release",
        "v1",
        "-o",
        "json",
        AWS_SESSION_TOKEN="token",
        AWS_CREDENTIAL_EXPIRATION=soon,
    )
    assert done.returncode == 5, done.stderr
    message = json.loads(done.stdout)["error"]["message"]
    assert f"expire at {soon}" in message and "--allow-short-credentials" in message
    cfn = boto3.client(
        "cloudformation",
        region_name="eu-west-1",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    names = [s["StackName"] for s in cfn.list_stacks()["StackSummaries"]]
    assert not [n for n in names if "conventions" in n]  # nothing was changed


def engine_with(session, allow: bool, lines: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        runtime=SimpleNamespace(aws=SimpleNamespace(session=session)),
        now=lambda: datetime.now(UTC),
        allow_short_credentials=allow,
        report=lines.append,
    )


def test_allow_short_credentials_goes_on_with_a_warning(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token")
    soon = datetime.now(UTC) + timedelta(minutes=30)
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", soon.strftime("%Y-%m-%dT%H:%M:%SZ"))
    session = boto3.Session(region_name="eu-west-1")
    lines: list[str] = []
    with pytest.raises(Unreachable):
        check_credentials_last(engine_with(session, False, lines), worst_case_s=3600)
    check_credentials_last(engine_with(session, True, lines), worst_case_s=3600)
    assert lines and "going on as asked" in lines[0]
    check_credentials_last(engine_with(session, False, lines), worst_case_s=600)  # it lasts
