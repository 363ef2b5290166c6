"""Whether a customer-managed KMS key lets EC2 Auto Scaling launch instances with volumes it
encrypts. Auto Scaling uses the key through its service-linked role, whose own IAM policy
grants no KMS rights: the key policy must name the role, or a grant must be made to it
(Auto Scaling guide, "Required AWS KMS key policy for use with encrypted volumes").
Otherwise every launch fails (Client.InternalError) once the fleet is being made. Pure.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# What EC2 does with the key when Auto Scaling launches an instance with an encrypted volume.
LAUNCH_NEEDS = ("kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext")
GRANT_NEEDS = ("CreateGrant", "Decrypt")


def auto_scaling_role(partition: str, account: str) -> str:
    return (
        f"arn:{partition}:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/"
        "AWSServiceRoleForAutoScaling"
    )


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _names(statement: Mapping[str, Any], principal: str) -> bool:
    found = statement.get("Principal")
    if found == "*":
        return True
    if isinstance(found, Mapping):
        return any(p in ("*", principal) for p in _listed(found.get("AWS")))
    return False


def _covers(statement: Mapping[str, Any], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"]))


def missing_for_launch(
    policy: Mapping[str, Any], grants: Iterable[Mapping[str, Any]], principal: str
) -> list[str]:
    """The actions of LAUNCH_NEEDS that neither the key policy nor a grant gives `principal`
    (an explicit Deny in the policy takes one away); [] when launches can use the key.
    """
    statements: Sequence[Mapping[str, Any]] = policy.get("Statement", [])
    if isinstance(statements, Mapping):
        statements = [statements]
    granted = {
        op
        for grant in grants
        if grant.get("GranteePrincipal") == principal
        for op in grant.get("Operations", [])
    }
    by_grant = all(op in granted for op in GRANT_NEEDS)
    missing = []
    for action in LAUNCH_NEEDS:
        mine = [s for s in statements if _names(s, principal) and _covers(s, action)]
        denied = any(s.get("Effect") == "Deny" for s in mine)
        allowed = by_grant or any(s.get("Effect") == "Allow" for s in mine)
        if denied or not allowed:
            missing.append(action)
    return missing
