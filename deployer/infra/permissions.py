"""The permission preflight: before any change, ask IAM's policy simulator whether the
credentials may make every call the command will make. A definite refusal stops the run with
exit 5 naming each action; anything the simulator cannot settle (a condition on a context
key deployer cannot supply, a principal it cannot simulate, no right to simulate at all)
is skipped with a note, never a refusal: the check must not stop a role that would work.

What it cannot see: resource-based policies (bucket and key policies) and session policies.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import yaml
from botocore.exceptions import ClientError

from deployer.aws.dynamodb import TABLE
from deployer.aws.iam import Iam
from deployer.aws.kms import Kms
from deployer.aws.session import error_code
from deployer.bake.artifact import S3Location
from deployer.errors import Unreachable
from deployer.release.engine import Engine

_ARN = re.compile(r"^arn:(?P<partition>[\w-]+):(?:iam|sts)::(?P<account>\d{12}):(?P<rest>.+)$")
_READS = ("Describe", "List", "Get", "Validate", "Estimate")
_STAR_ONLY = frozenset({"ec2", "elasticloadbalancing", "autoscaling"})
# Actions AWS authorizes on "*" whatever the policy's ARNs say: DescribeAlarms returns
# composite alarms only to a permission scoped to "*" (its API reference).
_STAR_ACTIONS = frozenset({"cloudwatch:DescribeAlarms", "servicequotas:GetServiceQuota"})


def principal_of(caller_arn: str) -> str | None:
    """The IAM user or role whose policies the caller has; None for root or federated users.
    An assumed role's path is not in its session ARN: a role with a path is not found, and the
    check is skipped.
    """
    match = _ARN.match(caller_arn)
    if not match:
        return None
    partition, account, rest = match["partition"], match["account"], match["rest"]
    kind, _, name = rest.partition("/")
    if kind == "user":
        return f"arn:{partition}:iam::{account}:user/{name}"
    if kind == "assumed-role":
        return f"arn:{partition}:iam::{account}:role/{name.split('/')[0]}"
    if kind == "role":
        return f"arn:{partition}:iam::{account}:role/{name}"
    return None


def check_permissions(engine: Engine, needed: Iterable[str]) -> None:
    caller = engine.runtime.aws.identity()["Arn"]
    principal = principal_of(caller)
    if principal is None:
        engine.report(f"note: permission preflight skipped: {caller} cannot be simulated")
        return
    iam = Iam(engine.runtime.aws)
    try:
        principal = iam.role_arn(principal)
        denied, unsure = evaluate(engine, iam, principal, set(needed))
    except Exception as exc:  # noqa: BLE001 - a check that cannot run never stops a run
        # (an endpoint without IAM's simulator, say: LocalStack, a plain moto server)
        why = error_code(exc) or type(exc).__name__
        engine.report(f"note: permission preflight skipped: the policy simulator said {why}")
        return
    if unsure:
        engine.report(
            f"note: permission preflight could not settle {len(unsure)} action(s) (conditions "
            f"on keys it cannot supply): {', '.join(sorted(unsure))}"
        )
    if denied:
        raise Unreachable(
            f"{caller} lacks {len(denied)} permission(s) this run needs: "
            f"{', '.join(sorted(denied))} (IAM's policy simulator says so). "
            "cloudformation/deployer-iam.yaml grants them. Nothing was changed."
        )


def evaluate(
    engine: Engine, iam: Iam, principal: str, actions: set[str]
) -> tuple[set[str], set[str]]:
    """(denied, unsure): the actions refused for sure, and those the simulator left open."""
    arn = _ARN.match(principal)
    assert arn is not None
    partition, account = arn["partition"], arn["account"]
    region, names = engine.runtime.aws.region, engine.names
    role = engine.spec.cloudformation.role_arn
    if role:
        actions.add("iam:PassRole")
    else:
        actions |= cloudformation_actions(engine)
    actions.discard("iam:SimulatePrincipalPolicy")  # it answered: allowed

    def resource(action: str) -> str:
        service, name = action.split(":")
        if service == "cloudformation":
            return (
                f"arn:{partition}:cloudformation:{region}:{account}:stack/"
                f"{names.service_stack}/00000000-0000-0000-0000-000000000000"
            )
        if service == "dynamodb":
            return f"arn:{partition}:dynamodb:{region}:{account}:table/{TABLE}"
        if service == "s3" and name.endswith("Object"):
            return f"arn:{partition}:s3:::{engine.artifact_bucket}/{names.app}/deployer.tar.gz"
        if service == "s3":
            return f"arn:{partition}:s3:::{engine.artifact_bucket}"
        if action == "ssm:SendCommand":  # on an instance of the app (its tag in the context)
            return f"arn:{partition}:ec2:{region}:{account}:instance/*"
        if service == "ssm" and "Parameter" in name:
            return f"arn:{partition}:ssm:{region}:{account}:parameter/deployer/{names.scope}"
        if action == "iam:PassRole" and role:
            return role
        if service == "states":  # the runner stack's state machine, or an execution of it
            kind = "stateMachine" if name == "StartExecution" else "execution"
            machine = f"arn:{partition}:states:{region}:{account}:{kind}:{names.runner_stack}"
            return machine if kind == "stateMachine" else f"{machine}:0"
        if service == "elasticloadbalancing" and listener and not name.startswith(_READS):
            # A rule of the production listener (its id made up): policies scope these.
            if "Rule" in name:  # deployer's rule, or one as it will be (its id made up)
                made = listener.replace(":listener/", ":listener-rule/") + "/0000000000000000"
                return str((engine.elb.rule_at_priority(listener) or {}).get("RuleArn", made))
            return listener
        return "*"

    infra = engine.stacks.existing()
    listener = infra.listener_arn if infra is not None else ""
    by_resource: dict[str, list[str]] = defaultdict(list)
    for action in sorted(actions):
        by_resource[resource(action)].append(action)
    source = engine.spec.artifact.source
    if source.startswith("s3://"):  # an artifact outside the artifact bucket is read too
        location = S3Location.parse(source)
        if location.bucket != engine.artifact_bucket:
            by_resource[f"arn:{partition}:s3:::{location.bucket}/{location.key}"].append(
                "s3:GetObject"
            )
    if actions & LAUNCHES:  # EC2 uses a customer-managed EBS key with our rights
        for key in ebs_keys(engine):
            by_resource[key].extend(EBS_KEY_ACTIONS)
    context = request_context(engine)
    denied, unsure = set(), set()
    for resource_arn, group in by_resource.items():
        tags = context
        if ":elasticloadbalancing:" in resource_arn:  # the listener's own tags, as they are
            found = engine.elb.tags_of(resource_arn)
            if ":listener-rule/" in resource_arn:  # deployer's rule: made (or migrated) tagged
                found = {**found, **engine.tags()}
            tags = with_resource_tags(context, found)
        for result in iam.simulate(principal, group, resource_arn, tags):
            decision = result.get("EvalDecision")
            name = str(result.get("EvalActionName"))
            if decision == "allowed":
                continue
            if not definite(name, resource_arn, result):
                unsure.add(name)
            else:
                denied.add(name)
    return denied, unsure


# What EC2 asks of KMS, as the caller, for an encrypted builder volume, CreateImage and
# CopyImage with a customer-managed key ("Required KMS key policy for use with encrypted
# volumes", EC2 User Guide).
EBS_KEY_ACTIONS = (
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
)


# What makes volumes (a builder, an image, a copy, a fleet's instances): only a run that asks
# for one of these needs the EBS keys' permissions (`exec`, `logs`, `status` do not).
LAUNCHES = frozenset(
    {
        "ec2:RunInstances",
        "ec2:CreateImage",
        "ec2:CopyImage",
        "cloudformation:CreateStack",
        "cloudformation:ExecuteChangeSet",
        "autoscaling:CreateAutoScalingGroup",
        "autoscaling:UpdateAutoScalingGroup",
    }
)


def ebs_keys(engine: Engine) -> list[str]:
    """Customer-managed EBS keys the run's volumes use: instance.kms_key_id, and the
    account's default EBS key when encryption by default is on. AWS's own aws/ebs needs
    nothing of the caller.
    """
    try:
        wanted = [engine.spec.instance.kms_key_id, engine.ec2.default_ebs_key()]
    except ClientError as exc:
        engine.report(f"note: the account's default EBS key was not read ({error_code(exc)})")
        wanted = [engine.spec.instance.kms_key_id]
    kms = Kms(engine.runtime.aws)
    found = []
    for key_id in filter(None, wanted):
        if key_id.endswith("alias/aws/ebs"):
            continue
        arn = kms.customer_key_arn(key_id)
        if arn is None:
            continue
        if arn not in found:
            found.append(arn)
    return found


def definite(action: str, resource_arn: str, result: dict[str, Any]) -> bool:
    """Whether an implicit deny means the permission is missing. Not when a condition key was
    missing from the context. Nor when the resource was `*` and the action can be scoped to
    resources: a policy scoped to ARNs does not match the literal `*` the simulator tests.
    The Describe calls of EC2, ELB and Auto Scaling take no resource (`*` only), and their
    deny is definite; so is DescribeAlarms's, which deployer needs on `*` (composite alarms).
    """
    if result.get("MissingContextValues"):  # an explicit deny on a key we lack, too
        return False
    if result.get("EvalDecision") == "explicitDeny":
        return True
    service, name = action.split(":")
    if action in _STAR_ACTIONS:
        return True
    return resource_arn != "*" or (service in _STAR_ONLY and name.startswith("Describe"))


def request_context(engine: Engine) -> dict[str, list[str]]:
    """The context keys deployer's requests carry: the tags it puts on what it makes (and so
    finds on what it changes), and the service role it passes.
    """
    tags = {**engine.tags(), "deployer:role": "fleet"}
    region = engine.runtime.aws.region
    context: dict[str, list[str]] = {
        "aws:TagKeys": sorted(tags),
        "aws:RequestedRegion": [region],
        # A customer-managed EBS key is used by EC2 on our behalf, for AWS resources.
        "kms:ViaService": [f"ec2.{region}.amazonaws.com"],
        "kms:GrantIsForAWSResource": ["true"],
    }
    for key in ("deployer:app", "deployer:environment"):
        for prefix in ("aws:RequestTag", "aws:ResourceTag", "ec2:ResourceTag"):
            context[f"{prefix}/{key}"] = [tags[key]]
        context[f"autoscaling:ResourceTag/{key}"] = [tags[key]]
        context[f"ssm:resourceTag/{key}"] = [tags[key]]
    role = engine.spec.cloudformation.role_arn
    if role:
        context["cloudformation:RoleArn"] = [role]
        context["iam:PassedToService"] = ["cloudformation.amazonaws.com"]
    return context


def with_resource_tags(context: dict[str, list[str]], tags: dict[str, str]) -> dict[str, list[str]]:
    """The context with the resource tags replaced by a resource's real ones (an operator's
    own listener need not carry deployer's tags).
    """
    kept = {k: v for k, v in context.items() if not k.startswith("aws:ResourceTag/")}
    return {**kept, **{f"aws:ResourceTag/{key}": [value] for key, value in tags.items()}}


def cloudformation_actions(engine: Engine) -> set[str]:
    """Without a service role, CloudFormation makes the templates' resources with the
    caller's rights: the actions of cloudformation/resource-actions.yaml (if the project has
    it) are needed too.
    """
    path = engine.templates_dir / "resource-actions.yaml"
    if not path.is_file():
        return set()
    listed = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return set(_flatten(listed.values()))


def _flatten(lists: Iterable[list[str]]) -> Iterable[str]:
    for actions in lists:
        yield from actions
