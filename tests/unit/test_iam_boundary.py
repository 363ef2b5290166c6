"""The stacks' service role cannot hand an instance more than the instance-role boundary
allows: IAM's own evaluation of the role's statements (explicit Deny first), on the requests
a template could make CloudFormation send.
"""

import re

import pytest

from tests.cfn import ACCOUNT, decision, load_template, resolved, statements
from tests.conftest import REPO

BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/deployer.hello.instance-boundary"
RUNNER_BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/deployer.hello.runner-boundary"
RUNNER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/deployer/hello/runner/hello-prod-runner-RunnerRole-1"
OTHER_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/deployer/hello/hello-prod-service-InstanceRole-AB12"
ANOTHER_APPS_ROLE = f"arn:aws:iam::{ACCOUNT}:role/deployer/hello-more/hello-more-x-InstanceRole-1"
A_ROLE_OUTSIDE_THE_PATH = f"arn:aws:iam::{ACCOUNT}:role/hello-admin"
TEMPLATE = load_template(REPO / "cloudformation" / "deployer-iam.yaml")


def service_role() -> list[dict]:
    role = TEMPLATE["Resources"]["CloudFormationServiceRole"]
    names = {
        "App": "hello",
        "InstanceRoleBoundary": BOUNDARY,
        "RunnerRoleBoundary": RUNNER_BOUNDARY,
        "AWS::Region": "eu-west-1",
    }
    return [resolved(s, names) for s in statements(role)]


def bound(boundary: str | None) -> dict[str, str]:
    return {} if boundary is None else {"iam:PermissionsBoundary": boundary}


@pytest.mark.parametrize("role", [ROLE, ANOTHER_APPS_ROLE, A_ROLE_OUTSIDE_THE_PATH])
def test_no_role_can_lose_its_boundary(role):
    assert decision(service_role(), "iam:DeleteRolePermissionsBoundary", role, bound(BOUNDARY)) == (
        "Deny"
    )


def test_instance_roles_are_made_and_bound_with_the_boundary_only():
    policy = service_role()
    for action in ("iam:CreateRole", "iam:PutRolePermissionsBoundary"):
        assert decision(policy, action, ROLE, bound(BOUNDARY)) == "Allow"
        assert decision(policy, action, ROLE, bound(OTHER_POLICY)) == "Deny"
        assert decision(policy, action, ROLE, bound(None)) == "Deny"
    # Rights are written only on a role that has the boundary.
    for action in ("iam:PutRolePolicy", "iam:AttachRolePolicy"):
        assert decision(policy, action, ROLE, bound(BOUNDARY)) == "Allow"
        assert decision(policy, action, ROLE, bound(None)) == "ImplicitDeny"


def test_the_boundaries_themselves_cannot_be_rewritten():
    policy = service_role()
    for action in ("iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy"):
        assert decision(policy, action, BOUNDARY) == "Deny"
        assert decision(policy, action, RUNNER_BOUNDARY) == "Deny"


def test_the_runner_role_is_made_with_the_runner_boundary_and_no_other_role_gets_it():
    """The runner boundary lets a role move traffic: only the release state machine's role,
    under /deployer/<app>/runner/, may have it, and it may have no other.
    """
    policy = service_role()
    for action in ("iam:CreateRole", "iam:PutRolePermissionsBoundary"):
        assert decision(policy, action, RUNNER_ROLE, bound(RUNNER_BOUNDARY)) == "Allow"
        assert decision(policy, action, RUNNER_ROLE, bound(OTHER_POLICY)) == "Deny"
        assert decision(policy, action, RUNNER_ROLE, bound(None)) == "Deny"
        assert decision(policy, action, ROLE, bound(RUNNER_BOUNDARY)) == "Deny"
        assert decision(policy, action, ANOTHER_APPS_ROLE, bound(RUNNER_BOUNDARY)) == "Deny"
    states = {"iam:PassedToService": "states.amazonaws.com"}
    assert decision(policy, "iam:PassRole", RUNNER_ROLE, states) == "Allow"
    assert decision(policy, "iam:PassRole", ROLE, states) != "Allow"


@pytest.mark.parametrize("role", [ANOTHER_APPS_ROLE, A_ROLE_OUTSIDE_THE_PATH])
def test_roles_of_another_app_or_outside_the_apps_path_are_out_of_reach(role):
    policy = service_role()
    for action in ("iam:UpdateAssumeRolePolicy", "iam:PutRolePolicy", "iam:DeleteRole"):
        assert decision(policy, action, role, bound(BOUNDARY)) != "Allow", action
    assert decision(policy, "iam:PassRole", role, {"iam:PassedToService": "ec2.amazonaws.com"}) != (
        "Allow"
    )
    assert (
        decision(policy, "iam:PassRole", ROLE, {"iam:PassedToService": "ec2.amazonaws.com"})
        == "Allow"
    )


def test_the_instance_role_and_profile_live_under_the_apps_path_with_the_boundary():
    service = load_template(REPO / "cloudformation" / "service.yaml")["Resources"]
    for name in ("InstanceRole", "InstanceProfile"):
        assert service[name]["Properties"]["Path"] == "/deployer/${App}/"
    assert service["InstanceRole"]["Properties"]["PermissionsBoundary"][1] == (
        "PermissionsBoundaryArn"
    )


@pytest.mark.parametrize(
    "repository, accepted",
    [
        ("octo-org/shop", True),
        ("octo-org@123456/shop@456789", True),  # immutable subject claims
        ("", True),
        ("octo-org@123456/shop", False),  # both ids or neither, as GitHub writes them
        ("octo-org/shop:environment:x", False),
        ("octo-org@abc/shop@1", False),
    ],
)
def test_the_trust_accepts_a_repository_with_or_without_its_immutable_ids(repository, accepted):
    pattern = TEMPLATE["Parameters"]["GitHubRepository"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, repository)) is accepted
    trust = TEMPLATE["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]
    github = trust["Statement"][0][1]["Condition"]["StringEquals"]
    sub = github["token.actions.githubusercontent.com:sub"]
    assert sub == "repo:${GitHubRepository}:${GitHubSubject}"
    if accepted and repository:
        claim = f"repo:{repository}:environment:production"
        assert (
            resolved(
                sub, {"GitHubRepository": repository, "GitHubSubject": "environment:production"}
            )
            == claim
        )


def test_roles_made_before_the_path_can_only_be_deleted_when_their_stack_replaces_them():
    policy = service_role()
    old = f"arn:aws:iam::{ACCOUNT}:role/hello-prod-service-InstanceRole-OLD1"
    profile = f"arn:aws:iam::{ACCOUNT}:instance-profile/hello-prod-service-InstanceProfile-OLD1"
    for action in ("iam:DetachRolePolicy", "iam:DeleteRolePolicy", "iam:DeleteRole"):
        assert decision(policy, action, old, bound(BOUNDARY)) == "Allow", action
    assert decision(policy, "iam:RemoveRoleFromInstanceProfile", profile) == "Allow"
    for action in (
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:UpdateAssumeRolePolicy",
        "iam:PassRole",
        "iam:PutRolePermissionsBoundary",
    ):
        assert decision(policy, action, old, bound(BOUNDARY)) != "Allow", action


def test_the_runner_roles_own_rights_are_within_its_boundary():
    runner = load_template(REPO / "cloudformation" / "runner.yaml")["Resources"]["RunnerRole"]
    boundary = TEMPLATE["Resources"]["RunnerRoleBoundary"]["Properties"]["PolicyDocument"]
    allowed = {a for st in boundary["Statement"] for a in _actions(st)}
    wanted = {a for st in statements(runner) for a in _actions(st)}
    assert wanted and wanted <= allowed
    assert runner["Properties"]["Path"] == "/deployer/${App}/runner/"


def _actions(statement: dict) -> list[str]:
    listed = statement["Action"]
    return [listed] if isinstance(listed, str) else list(listed)
