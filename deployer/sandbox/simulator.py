"""iam:SimulatePrincipalPolicy, which moto does not serve: the sandbox answers it from the
same `denied` behaviour that refuses the calls themselves, so a permission the sandbox's
"role" lacks is found by deployer's permission preflight as it would be on AWS (implicitDeny,
no statement matched), and a sandbox that denies SimulatePrincipalPolicy itself is a role
without that right.
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult, BaseResponse

from deployer.aws.actions import iam_action
from deployer.sandbox.world import WORLD


def members(params: dict[str, Any], name: str) -> list[str]:
    """A query-protocol list (Name.member.1, Name.member.2, ...), in order."""
    found: list[str] = []
    index = 1
    while True:
        value = params.get(f"{name}.member.{index}")
        if value is None:
            return found
        found.append(value[0] if isinstance(value, list) else value)
        index += 1


def simulate_principal_policy(response: BaseResponse, params: dict[str, Any]) -> Any:
    denied = {iam_action(*key.split(":", 1)).lower() for key in WORLD.behaviours.denied}
    results = []
    for action in members(params, "ActionNames"):
        for resource in members(params, "ResourceArns") or ["*"]:
            refused = action.lower() in denied
            results.append(
                {
                    "EvalActionName": action,
                    "EvalResourceName": resource,
                    "EvalDecision": "implicitDeny" if refused else "allowed",
                    "MatchedStatements": [] if refused else [{"SourcePolicyId": "sandbox"}],
                    "MissingContextValues": [],
                }
            )
    return response.serialized(ActionResult({"EvaluationResults": results, "IsTruncated": False}))
