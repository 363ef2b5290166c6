"""The deploy role in cloudformation/deployer-iam.yaml grants what deployer does, and no more
services than it uses: every AWS action a sandbox bake, release, canary, rollback, gc, plan,
settings change, logs, exec and destroy make is recorded (DEPLOYER_ACTION_LOG, from botocore's
events), and checked against the role's policy. What CloudFormation does on the caller's behalf for
each resource type of our templates (cloudformation/resource-actions.yaml) is checked against
the CloudFormation service role's policy.

Only actions are checked here, not resources or conditions: those are IAM's to evaluate.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.aws.poller import Poll, Poller
from tests.cfn import load_template, statements
from tests.conftest import NO_IMAGE_CATALOG, REPO, copy_project
from tests.e2e.conftest import Cli, sandbox_client

pytestmark = pytest.mark.e2e

ROLE = "arn:aws:iam::123456789012:role/deployer-iam-hello-CloudFormationServiceRole"
CONFIG = f"""\
app: hello
environment: iam
artifact: {{source: app}}
capacity: {{min: 1, desired: 1, max: 2}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 120}}
strategy: {{kind: canary, steps: [50, 100], bake_seconds: 1}}
gates: {{interval_seconds: 0.5}}
rollback_window: 0
cloudformation: {{role_arn: {ROLE}}}
"""
# Called without an API call of their own: CreateStack/UpdateStack with a RoleARN.
IMPLICIT = {"iam:PassRole"}


def granted(role: dict[str, Any], conditional: bool = True) -> list[str]:
    """The Allow actions of a role's inline policies (with `conditional`, also those granted
    only for a parameter given: an external artifact, customer-managed keys).
    """
    actions: list[str] = []
    for statement in statements(role, conditional):
        if statement["Effect"] != "Allow":
            continue
        listed = statement["Action"]
        actions.extend([listed] if isinstance(listed, str) else listed)
    return actions


def allows(patterns: list[str], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


def service(action: str) -> str:
    return action.split(":")[0].lower()


COMMANDS = (
    ("plan", "v1"),
    ("bake", "v1"),
    ("release", "v1"),
    ("config", "set", "GREETING", "hi", "--secure"),
    ("config", "get", "GREETING"),
    ("release", "v2"),
    ("config", "set", "RUN", "2"),  # a new fleet of v2, run by Step Functions
    ("release", "v2", "--executor", "stepfunctions"),
    ("-c", "changed.yaml", "plan", "v3"),  # a change set, deleted afterwards
    ("status",),
    ("history",),
    ("rollback",),
    ("logs", "--since", "5m"),
    ("exec", "--", "true"),
    ("config", "unset", "GREETING"),
    ("gc",),
    ("destroy", "--yes"),
)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, set[str]]:
    """Every action of a day's work on the sandbox, by command, as the deploy role would
    make them.
    """
    workdir = tmp_path_factory.mktemp("iam")
    copy_project(workdir)
    (workdir / "deployer.yaml").write_text(CONFIG)
    (workdir / "changed.yaml").write_text(CONFIG + "alb: {access_logs_bucket: elb-logs}\n")
    # The bake's actions are recorded too: this day's sandbox bakes for itself.
    cli = Cli(workdir, {**os.environ, **NO_IMAGE_CATALOG})
    by_command: dict[str, set[str]] = {}
    try:
        administrator_deploys_the_iam_stack(workdir, cli)
        for index, command in enumerate(COMMANDS):
            config = command[1] if command[0] == "-c" else "deployer.yaml"
            args = command[2:] if command[0] == "-c" else command
            log = workdir / f"actions-{index}.log"
            cli.env["DEPLOYER_ACTION_LOG"] = str(log)
            done = cli(*args, config=config)
            assert done.returncode == 0, (command, done.stderr)
            actions = set(log.read_text().split()) if log.exists() else set()
            by_command[args[0]] = by_command.get(args[0], set()) | actions
    finally:
        cli("sandbox", "down")
    return by_command


def administrator_deploys_the_iam_stack(workdir: Path, cli: Cli) -> None:
    """As the README's first step: deployer-iam.yaml, deployed by someone who may create IAM
    roles, makes the roles and the account's artifact bucket of the region.
    """
    assert cli("sandbox", "up").returncode == 0
    cfn = sandbox_client(workdir, "cloudformation")
    stack = cfn.create_stack(
        StackName="deployer-iam-hello",
        TemplateBody=(REPO / "cloudformation" / "deployer-iam.yaml").read_text(),
        Parameters=[{"ParameterKey": "App", "ParameterValue": "hello"}],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )["StackId"]
    Poller(first_interval=0.1, max_interval=0.5).until(
        "the IAM stack",
        lambda: Poll(
            cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE",
            "in progress",
        ),
        120,
    )


def test_the_deploy_role_allows_every_action_deployer_makes(recorded):
    template = load_template(REPO / "cloudformation" / "deployer-iam.yaml")
    policy = granted(template["Resources"]["DeployRole"])
    from deployer.aws.actions import UNCONDITIONAL

    needed = (set().union(*recorded.values()) - UNCONDITIONAL) | IMPLICIT
    assert {"elasticloadbalancing:ModifyRule", "ec2:CreateImage"} <= needed  # it did record
    missing = sorted(a for a in needed if not allows(policy, a))
    assert missing == [], f"deployer-iam.yaml's DeployRole lacks {missing}"
    always = granted(template["Resources"]["DeployRole"], conditional=False)
    unused = sorted({service(p) for p in always} - {service(a) for a in needed})
    assert unused == [], f"DeployRole grants services deployer never calls: {unused}"


def test_the_deploy_role_may_not_rewrite_the_artifact_buckets_policy_or_settings(recorded):
    """parliament's finding: with s3:PutBucketPolicy a holder of the role could grant itself
    more. The bucket is the IAM stack's; a day's work makes no bucket-level write.
    """
    template = load_template(REPO / "cloudformation" / "deployer-iam.yaml")
    policy = granted(template["Resources"]["DeployRole"])
    from deployer.aws.actions import BUCKET_ACTIONS

    assert sorted(a for a in BUCKET_ACTIONS if allows(policy, a)) == []
    made = set().union(*recorded.values())
    assert sorted(made & BUCKET_ACTIONS) == []


def test_the_permission_preflight_asks_for_what_bake_and_release_make(recorded):
    from deployer.aws.actions import (
        BAKE_ACTIONS,
        RELEASE_ACTIONS,
        SERVER_SIDE_ACTIONS,
        UNCONDITIONAL,
    )

    assert sorted(recorded["bake"] - UNCONDITIONAL - BAKE_ACTIONS) == []
    assert "states:StartExecution" in recorded["release"]
    made = recorded["release"] - UNCONDITIONAL
    assert sorted(made - RELEASE_ACTIONS - SERVER_SIDE_ACTIONS) == []


def test_the_permission_preflight_of_exec_asks_for_what_it_makes(recorded):
    from deployer.aws.actions import EXEC_ACTIONS, UNCONDITIONAL

    assert "ssm:SendCommand" in recorded["exec"]
    assert sorted(recorded["exec"] - UNCONDITIONAL - EXEC_ACTIONS) == []


def test_every_resource_type_of_the_templates_has_its_actions_in_the_map():
    actions = yaml.safe_load((REPO / "cloudformation" / "resource-actions.yaml").read_text())
    used = set()
    for name in ("network", "service", "fleet", "runner"):
        template = load_template(REPO / "cloudformation" / f"{name}.yaml")
        used |= {r["Type"] for r in template["Resources"].values()}
    assert sorted(used - set(actions)) == []
    for resource_type, listed in actions.items():
        assert listed, resource_type
        for action in listed:
            assert re.fullmatch(r"[a-z0-9-]+:[A-Za-z0-9*]+", action), (resource_type, action)


def test_the_cloudformation_service_role_allows_what_the_templates_make():
    actions = yaml.safe_load((REPO / "cloudformation" / "resource-actions.yaml").read_text())
    template = load_template(REPO / "cloudformation" / "deployer-iam.yaml")
    policy = granted(template["Resources"]["CloudFormationServiceRole"])
    # CloudFormation calls DeleteRolePermissionsBoundary only to take a role's boundary off;
    # the service role denies that outright (tests/unit/test_iam_boundary.py).
    denied = {"iam:DeleteRolePermissionsBoundary"}
    needed = {a for listed in actions.values() for a in listed} | {"iam:PassRole"}
    missing = sorted(a for a in needed - denied if not allows(policy, a))
    assert missing == [], f"CloudFormationServiceRole lacks {missing}"
    unused = sorted({service(p) for p in policy} - {service(a) for a in needed})
    assert unused == [], f"CloudFormationServiceRole grants services never used: {unused}"
