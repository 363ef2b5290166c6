"""deployer.yaml: a bad config names the file, the field and the reason, and exits 2."""

import textwrap
from pathlib import Path

import pytest

from deployer.config import load_config, parse_duration
from deployer.errors import ConfigError, ExitCode

GOOD = """
app: hello
environment: demo
artifact:
  source: examples/hello
"""


def write(tmp_path, text):
    path = tmp_path / "deployer.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_minimal_config_gets_safe_defaults(tmp_path):
    loaded = load_config(write(tmp_path, GOOD))
    spec = loaded.spec
    assert spec.target.kind == "sandbox"
    assert spec.azs == 2
    assert spec.capacity.desired == 2
    assert spec.rollback_window == 3600
    assert loaded.resolve("examples/hello") == (tmp_path / "examples/hello").resolve()


def test_the_repository_config_is_valid():
    repo = Path(__file__).resolve().parents[2]
    assert load_config(repo / "deployer.yaml").spec.app == "hello"


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        ("colour: blue\n", "colour", "unknown field"),
        ("capacity:\n  min: 3\n  desired: 2\n", "capacity", "min <= desired <= max"),
        (
            "health_check:\n  interval_seconds: 1\n",
            "health_check.interval_seconds",
            "greater than or equal to 5",
        ),
        ("azs: 1\n", "azs", "greater than or equal to 2"),
        ("rollback_window: soon\n", "rollback_window", "not a duration"),
        ("target:\n  kind: aws\n  region: mars\n", "target.region", "should match pattern"),
        ("target:\n  kind: gcp\n", "target", "does not match any of the expected tags"),
        ("instance:\n  port: 80\n", "instance.port", "greater than or equal to 1024"),
    ],
)
def test_bad_fields_are_named_with_a_reason(tmp_path, extra, field, reason):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD + extra))
    error = caught.value
    assert error.exit_code == ExitCode.BAD_INPUT
    assert error.file.endswith("deployer.yaml")
    assert error.field == field
    assert reason in error.reason


def test_aws_target_needs_ssh_settings_for_the_builder(tmp_path):
    with pytest.raises(ConfigError, match="needs bake.ssh"):
        load_config(write(tmp_path, GOOD + "target:\n  kind: aws\n  region: eu-west-1\n"))


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "app: [unclosed\n"))
    assert caught.value.field.startswith("line ")


def test_a_missing_file_is_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_durations():
    assert parse_duration("90m") == 5400
    assert parse_duration("2d") == 172800
    assert parse_duration(0) == 0
    with pytest.raises(ValueError):
        parse_duration("1 week")
