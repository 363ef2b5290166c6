"""deployer.yaml: a bad config names the file, the field and the reason, and exits 2."""

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deployer.config.base import parse_duration
from deployer.config.loading import load_config
from deployer.errors import ConfigError, ExitCode
from deployer.target import placement

GOOD = """
app: hello
environment: demo
artifact:
  source: examples/hello
"""


LISTENER = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/team/0a1b/2c3d"
TEST_LISTENER = LISTENER.replace("2c3d", "4e5f")


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
        (
            "network: {public_subnet_ids: [subnet-0000000a, subnet-0000000b]}\n",
            "network",
            "public_subnet_ids given without vpc_id",
        ),
        (
            "network: {vpc_id: vpc-00000001, public_subnet_ids: [subnet-0000000a, "
            "subnet-0000000b], private_subnet_ids: [subnet-0000001a]}\n",
            "network",
            "private_subnet_ids: with vpc_id, give at least two subnets",
        ),
        (
            "network: {vpc_id: vpc-00000001, cidr: 10.9.0.0/16, public_subnet_ids: "
            "[subnet-0000000a, subnet-0000000b], private_subnet_ids: [subnet-0000001a, "
            "subnet-0000001b]}\n",
            "network",
            "cidr shape the network deployer makes",
        ),
        (
            "network: {vpc_id: vpc-00000001, public_subnet_ids: [subnet-0000000a, "
            "subnet-0000000b], private_subnet_ids: [subnet-0000000a, subnet-0000001b]}\n",
            "network",
            "subnet-0000000a is both public and private",
        ),
        (
            f"service: {{listener_arn: {LISTENER}, test_listener_arn: {TEST_LISTENER}}}\n",
            "(top level)",
            "your own load balancer needs your own network",
        ),
        (f"service: {{listener_arn: {LISTENER}}}\n", "service", "give listener_arn and test"),
        (
            f"service: {{listener_arn: {LISTENER}, test_listener_arn: {LISTENER}}}\n",
            "service",
            "must not be the production listener",
        ),
        ("service: {listener_arn: arn:aws:elb:x}\n", "service.listener_arn", "should match"),
        (
            "network: {vpc_id: my-vpc}\n",
            "network.vpc_id",
            "should match pattern",
        ),
        (
            "network: {vpc_id: vpc-00000001, public_subnet_ids: [subnet-x, subnet-y]}\n",
            "network.public_subnet_ids",
            "'subnet-x' is not a subnet id",
        ),
        (
            "strategy: {kind: canary, steps: [pause, 10, 100]}\n",
            "strategy.steps",
            "a pause goes between two steps",
        ),
        (
            "strategy: {kind: canary, steps: [10, 100, pause]}\n",
            "strategy.steps",
            "a pause goes between two steps",
        ),
        (
            "strategy: {kind: canary, steps: [10, pause, pause, 100]}\n",
            "strategy.steps",
            "a pause goes between two steps",
        ),
        (
            "strategy: {kind: canary, steps: [10, wait, 100]}\n",
            "strategy.steps",
            "entry 2 ('wait') is neither a weight (0-999) nor `pause`",
        ),
        ("strategy: {steps: [10, pause, 100]}\n", "strategy", "with kind: all_at_once"),
        ("strategy: {pause_timeout: 8d}\n", "strategy.pause_timeout", "outside 1s-7d"),
        (
            "executor: stepfunctions\nverify: {after_step: [./smoke.sh]}\n",
            "(top level)",
            "verify.after_step: hooks run on this machine",
        ),
        ("executor: lambda\n", "executor", "'local' or 'stepfunctions'"),
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


def test_an_aws_target_needs_no_key_pair_the_bake_makes_its_own(tmp_path):
    loaded = load_config(write(tmp_path, GOOD + "target:\n  kind: aws\n  region: eu-west-1\n"))
    assert loaded.spec.bake.ssh.source_cidr == "auto"
    assert placement(loaded).image_regions == ("eu-west-1",)


@pytest.mark.parametrize(
    ("extra", "field", "reason"),
    [
        ("regions: [eu-west-1, us-east-1]\n", "(top level)", "must be the target's (us-east-1)"),
        ("regions: [us-east-1, us-east-1]\n", "regions", "given twice"),
        ("regions: [mars-1]\n", "regions", "not a region name"),
        ("bake: {ssh: {source_cidr: everywhere}}\n", "bake.ssh.source_cidr", "neither auto"),
        ("bake: {keep_images: 0}\n", "bake.keep_images", "greater than or equal to 1"),
        ("strategy: {bake_seconds: 1}\ngates: {interval_seconds: 5}\n", "(top level)", "gate"),
    ],
)
def test_bake_regions_and_holds_are_checked(tmp_path, extra, field, reason):
    with pytest.raises(ConfigError) as caught:  # the bake region, against the target's
        placement(load_config(write(tmp_path, GOOD + extra)))
    assert (caught.value.field, reason in caught.value.reason) == (field, True)


def test_an_environment_name_elbv2_would_refuse_is_bad_input(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(
            write(tmp_path, "app: hello\nenvironment: blue--green\nartifact: {source: x}\n")
        )
    assert caught.value.field == "environment"


def test_a_key_given_twice_names_both_lines(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "app: one\nenvironment: e\napp: two\n"))
    assert caught.value.field == "lines 1 and 3" and "'app' is given twice" in caught.value.reason


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


def test_the_test_listener_is_never_open_to_everyone(tmp_path):
    """An unreleased build answers there: by default only where deployer runs may reach it."""
    assert load_config(write(tmp_path, GOOD)).spec.strategy.test_listener_cidr == "auto"
    given = load_config(write(tmp_path, GOOD + "strategy: {test_listener_cidr: 203.0.113.0/24}\n"))
    assert given.spec.strategy.test_listener_cidr == "203.0.113.0/24"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD + "strategy: {test_listener_cidr: 0.0.0.0/0}\n"))
    assert "strategy.test_listener_cidr" in caught.value.message
    assert "opens the test listener" in caught.value.message


def test_instance_roles_get_the_boundary_of_deployer_iam_yaml(tmp_path):
    """The service role may create role/<app>-* only under a permissions boundary."""
    role = "arn:aws:iam::123456789012:role/deployer.hello.cloudformation"
    loaded = load_config(write(tmp_path, GOOD + f"cloudformation: {{role_arn: {role}}}\n"))
    assert loaded.spec.cloudformation.boundary_arn == (
        "arn:aws:iam::123456789012:policy/deployer.hello.instance-boundary"
    )
    other = "arn:aws:iam::123456789012:role/my-own-cfn-role"
    loaded = load_config(write(tmp_path, GOOD + f"cloudformation: {{role_arn: {other}}}\n"))
    assert loaded.spec.cloudformation.boundary_arn == ""


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("env: ", "entry 0: env: names no variable"),
        ("hooks.example.com/deploys", "entry 0: not a URL (Apprise URLs look like"),
    ],
)
def test_a_notify_entry_of_the_wrong_form_is_refused_at_load(tmp_path, entry, reason):
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD + f"notify: ['{entry}']\n"))
    assert caught.value.field == "notify"
    assert caught.value.reason.startswith(reason)


def test_a_notify_scheme_apprise_does_not_know_stops_a_run_before_it_starts(tmp_path):
    from deployer.output.events import Events, new_run_id
    from deployer.output.outputs import RunOutputs

    text = GOOD + "notify: ['json://127.0.0.1:9/hook', 'nosuch://tok3n@host/path']\n"
    loaded = load_config(write(tmp_path, text))  # the form is fine: Apprise is asked later
    events = Events(new_run_id())
    outputs = RunOutputs(events, tmp_path, stderr=io.StringIO())
    with pytest.raises(ConfigError) as caught:
        outputs.started(loaded, "v1", "sandbox")
    error = caught.value
    assert (error.exit_code, error.field) == (ExitCode.BAD_INPUT, "notify")
    assert error.reason == "entry 1: Apprise does not know the scheme 'nosuch'"
    assert "tok3n" not in error.message  # the URL may hold a token: never echoed
    assert not events.of_type("run_started")


def test_loading_the_config_neither_imports_apprise_nor_looks_for_a_region(tmp_path):
    """Loading is pure: the notify URLs' schemes and the region are asked where they're used."""
    path = write(tmp_path, GOOD + "target: {kind: aws}\nnotify: ['slack://a/b/c']\n")
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from deployer.config.loading import load_config\n"
        f"spec = load_config(Path({str(path)!r})).spec\n"
        "print(spec.target.region, 'apprise' in sys.modules, 'boto3' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["None", "False", "False"]


def test_a_pause_holds_the_step_before_it(tmp_path):
    loaded = load_config(
        write(
            tmp_path,
            GOOD + "strategy: {kind: canary, steps: [10, pause, 50, 100], pause_timeout: 30m}\n",
        )
    )
    strategy = loaded.spec.strategy
    assert strategy.weights == (10, 50, 100)
    assert strategy.pauses_after == {0}
    assert strategy.pause_timeout == 1800
