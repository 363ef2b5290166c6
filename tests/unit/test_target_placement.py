"""Where a config's target acts: the sandbox's region, or an AWS region as the SDKs find it.
The config holds only what deployer.yaml declares; deployer.target resolves the rest.
"""

from __future__ import annotations

import textwrap

import pytest

from deployer.config.loading import load_config
from deployer.errors import ConfigError, ExitCode
from deployer.target import placement

GOOD = "app: hello\nartifact: {source: app}\n"


@pytest.fixture
def aws_env(tmp_path, monkeypatch):
    """No AWS settings but those a test gives; a profile file of its own."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    profiles = tmp_path / "aws-config"
    profiles.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(profiles))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    return profiles


def loaded_with(tmp_path, extra):
    path = tmp_path / "deployer.yaml"
    path.write_text(GOOD + textwrap.dedent(extra))
    return load_config(path)


def test_the_sandbox_acts_in_its_one_region(tmp_path):
    place = placement(loaded_with(tmp_path, ""))
    assert (place.kind, place.region, place.label) == ("sandbox", "us-east-1", "sandbox")
    assert place.image_regions == ("us-east-1",)


def test_an_aws_region_comes_from_the_file_then_the_environment_then_the_profile(
    tmp_path, aws_env, monkeypatch
):
    aws_env.write_text("[default]\nregion = eu-north-1\n")
    undeclared = loaded_with(tmp_path, "target: {kind: aws}\n")
    assert undeclared.spec.target.region is None  # the config holds what the file says
    assert placement(undeclared).region == "eu-north-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert placement(undeclared).region == "ap-south-1"
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert placement(undeclared).label == "aws eu-west-1"
    declared = loaded_with(tmp_path, "target: {kind: aws, region: us-west-2}\n")
    assert placement(declared).region == "us-west-2"


def test_no_region_anywhere_is_bad_input_naming_every_source(tmp_path, aws_env):
    with pytest.raises(ConfigError) as caught:
        placement(loaded_with(tmp_path, "target: {kind: aws}\n"))
    error = caught.value
    assert (error.exit_code, error.field) == (ExitCode.BAD_INPUT, "target.region")
    assert error.file.endswith("deployer.yaml") and error.reason.startswith("no AWS region")
    for source in ("AWS_REGION", "AWS_DEFAULT_REGION", "profile"):
        assert source in error.reason


def test_the_bake_region_must_be_the_resolved_one(tmp_path, aws_env, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    both = loaded_with(tmp_path, "target: {kind: aws}\nregions: [eu-west-1, us-east-1]\n")
    assert placement(both).image_regions == ("eu-west-1", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with pytest.raises(ConfigError) as caught:
        placement(both)
    assert "the first region (eu-west-1) is where the image is baked" in caught.value.reason
    assert "must be the target's (us-east-1)" in caught.value.reason


def test_a_profile_is_set_aside_for_credentials_in_the_environment(tmp_path, aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    loaded = loaded_with(tmp_path, "target: {kind: aws, region: eu-west-1, profile: laptop}\n")
    place = placement(loaded)
    assert place.profile is None
    assert "target.profile 'laptop' is ignored" in place.warning
