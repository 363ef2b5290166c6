"""The long-lived stacks (network, service) and the templates every stack is made from."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from deployer.aws.cloudformation import CloudFormation, Stack
from deployer.errors import BadInput, StackFailed

TEMPLATE_NAMES = ("network", "service", "fleet")
STACK_DEADLINE_S = 1800
UNRECOVERABLE = frozenset(
    {"ROLLBACK_COMPLETE", "CREATE_FAILED", "ROLLBACK_FAILED", "DELETE_FAILED"}
)


@dataclass(frozen=True)
class Templates:
    bodies: Mapping[str, str]

    @staticmethod
    def load(directory: Path) -> Templates:
        bodies = {}
        for name in TEMPLATE_NAMES:
            path = directory / f"{name}.yaml"
            if not path.is_file():
                raise BadInput(f"cloudformation: {path} does not exist")
            bodies[name] = path.read_text(encoding="utf-8")
        return Templates(bodies)

    def __getitem__(self, name: str) -> str:
        return self.bodies[name]


def lint_templates(directory: Path, region: str) -> list[str]:
    """cfn-lint every template: an error is bad input, found before any change; warnings are
    returned, to be reported (a rule a newer cfn-lint adds must not stop every release).
    """
    from cfnlint.api import ManualArgs, lint  # imported here: it takes half a second

    errors, warnings = [], []
    for name in TEMPLATE_NAMES:
        path = directory / f"{name}.yaml"
        if not path.is_file():
            raise BadInput(f"cloudformation: {path} does not exist")
        for match in lint(path.read_text(encoding="utf-8"), config=ManualArgs(regions=[region])):
            found = f"{path}:{match.linenumber}: {match.rule.id} {match.message}"
            if match.rule.severity == "error":
                errors.append(found)
            elif match.rule.severity == "warning":
                warnings.append(found)
    if errors:
        raise BadInput("cloudformation: cfn-lint found errors:\n  " + "\n  ".join(errors))
    return warnings


class StackSpec(NamedTuple):
    """What a long-lived stack should be: ensure_stack(cfn, *spec, ...) makes it so."""

    name: str
    body: str
    parameters: Mapping[str, str]
    tags: Mapping[str, str]


@dataclass(frozen=True)
class Infra:
    vpc_id: str
    subnet_ids: str
    builder_subnet_id: str
    instance_security_group_id: str
    load_balancer_dns: str
    listener_arn: str
    listener_port: int
    test_listener_arn: str
    test_listener_port: int
    instance_profile_arn: str = ""
    load_balancer_full_name: str = ""
    private_subnet_ids: str = ""  # fleets go here (no public IPs); a network from before: ""

    @staticmethod
    def nowhere() -> Infra:
        """No infra: for what needs none of it (a bake key, a reuse check)."""
        return Infra("", "", "", "", "", "", 0, "", 0)

    @staticmethod
    def from_outputs(network: Mapping[str, str], service: Mapping[str, str]) -> Infra:
        return Infra(
            vpc_id=network["VpcId"],
            subnet_ids=network["SubnetIds"],
            builder_subnet_id=network["BuilderSubnetId"],
            instance_security_group_id=service["InstanceSecurityGroupId"],
            load_balancer_dns=service["LoadBalancerDns"],
            listener_arn=service["ListenerArn"],
            listener_port=int(service["ListenerPort"]),
            test_listener_arn=service["TestListenerArn"],
            test_listener_port=int(service["TestListenerPort"]),
            instance_profile_arn=service.get("InstanceProfileArn", ""),
            load_balancer_full_name=service.get("LoadBalancerFullName", ""),
            private_subnet_ids=network.get("PrivateSubnetIds", ""),
        )


def fingerprint(body: str, parameters: Mapping[str, str]) -> str:
    blob = json.dumps({"body": body, "parameters": dict(parameters)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def ensure_stack(
    cfn: CloudFormation,
    name: str,
    body: str,
    parameters: Mapping[str, str],
    tags: Mapping[str, str],
    report: Callable[[str], None],
    replace_failed: bool = False,
) -> Stack:
    """Create the stack, or update it when its template or parameters changed; else leave it.

    The fingerprint of what was applied is a stack tag, so no change means no API write. A
    stack in a failed state is never deleted unless the operator said so (--replace-failed):
    the network and service stacks hold the load balancer that serves production.
    """
    print_ = fingerprint(body, parameters)
    tags = {**tags, "deployer:fingerprint": print_}
    stack = cfn.describe(name)
    if stack is not None and stack.status == "DELETE_IN_PROGRESS":
        report(f"infra: {name} is being deleted (an earlier create failed); waiting")
        cfn.wait_deleted(stack.stack_id, STACK_DEADLINE_S)
        stack = None
    if stack is not None and stack.status == "UPDATE_ROLLBACK_FAILED":
        raise StackFailed(
            name,
            stack.status,
            f"{cfn.failure_reason(stack.stack_id) or stack.reason}. Run `deployer infra "
            "recover` (and `--skip LOGICAL_ID` for a resource that cannot roll back)",
        )
    if stack is not None and stack.status in UNRECOVERABLE and not replace_failed:
        raise StackFailed(
            name,
            stack.status,
            f"{cfn.failure_reason(stack.stack_id) or stack.reason}. deployer does not delete "
            "it by itself; rerun with --replace-failed to delete it and create it again",
        )
    if stack is not None and stack.status in UNRECOVERABLE:
        report(f"infra: {name} is {stack.status}; deleting it to create it again, as asked")
        cfn.delete(stack.stack_id)
        cfn.wait_deleted(stack.stack_id, STACK_DEADLINE_S)
        stack = None
    if stack is None:
        report(f"infra: creating {name}")
        stack_id = cfn.create(name, body, parameters, tags, token=request_token(name))
        return cfn.wait_for(stack_id, "CREATE_COMPLETE", STACK_DEADLINE_S)
    if stack.status.endswith("_IN_PROGRESS"):
        goal = "CREATE_COMPLETE" if stack.status.startswith("CREATE") else "UPDATE_COMPLETE"
        stack = cfn.wait_for(stack.stack_id, goal, STACK_DEADLINE_S)
    if stack.tags.get("deployer:fingerprint") == print_:
        return stack
    report(f"infra: updating {name}")
    if not cfn.update(name, body, parameters, tags):
        return stack
    return cfn.wait_for(stack.stack_id, "UPDATE_COMPLETE", STACK_DEADLINE_S)


def request_token(name: str) -> str:
    """A ClientRequestToken for one attempt: botocore's retries of the call reuse it, a rerun
    gets a new one (a token names one request, not the stack: reusing it after the stack
    failed and deleted itself would point at the deleted stack).
    """
    return f"{name}-{secrets.token_hex(6)}"[:128]
