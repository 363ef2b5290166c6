"""Reading our CloudFormation templates in tests: their short-form functions (!Sub, !Ref ...)
read as plain values.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import yaml


class CfnLoader(yaml.SafeLoader):
    """A template's YAML, its short-form functions read as plain values."""


CfnLoader.add_multi_constructor(
    "!",
    lambda loader, suffix, node: (
        loader.construct_scalar(node)
        if isinstance(node, yaml.ScalarNode)
        else loader.construct_sequence(node)
        if isinstance(node, yaml.SequenceNode)
        else loader.construct_mapping(node)
    ),
)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


def statements(role: dict[str, Any], conditional: bool = True) -> list[dict[str, Any]]:
    """Every statement of a role's inline policies; one under `!If [condition, statement,
    !Ref AWS::NoValue]` counts unless `conditional` is False.
    """
    found = []
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if isinstance(statement, list):  # !If: [condition, the statement, NoValue]
                if conditional:
                    found.append(statement[1])
            else:
                found.append(statement)
    return found


# ---- IAM's evaluation of a role's own statements, for the template tests -------------------

ACCOUNT = "123456789012"


def resolved(value: Any, names: dict[str, str]) -> Any:
    """A statement's value with ${AWS::Partition}, ${AWS::AccountId} and the template's
    parameters (and a bare !Ref of one) replaced by `names`.
    """
    if isinstance(value, list):
        return [resolved(v, names) for v in value]
    if isinstance(value, dict):
        return {k: resolved(v, names) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    if value in names:
        return names[value]
    text = value.replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", ACCOUNT)
    for name, replacement in names.items():
        text = text.replace("${" + name + "}", replacement)
    return text


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _conditions_hold(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    """StringEquals, StringNotEquals and StringLike, as IAM evaluates them; a key the request
    lacks fails StringEquals/StringLike and satisfies StringNotEquals.
    """
    for operator, tests in conditions.items():
        for key, expected in tests.items():
            found = context.get(key)
            wanted = _listed(expected)
            if operator == "StringEquals":
                held = found is not None and found in wanted
            elif operator == "StringNotEquals":
                held = found is None or found not in wanted
            elif operator == "StringLike":
                held = found is not None and any(fnmatch.fnmatchcase(found, w) for w in wanted)
            else:
                raise AssertionError(f"the evaluator does not know {operator}")
            if not held:
                return False
    return True


def decision(
    policy_statements: list[dict[str, Any]],
    action: str,
    resource: str,
    context: dict[str, str] | None = None,
) -> str:
    """ "Deny" (an explicit Deny matches), "Allow" or "ImplicitDeny", as IAM decides for one
    request against these statements alone.
    """
    matched = []
    for statement in policy_statements:
        actions = _listed(statement["Action"])
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions):
            continue
        if "NotResource" in statement:  # every resource but those listed
            if any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement["NotResource"])):
                continue
        elif not any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement["Resource"])):
            continue
        if _conditions_hold(statement.get("Condition", {}), context or {}):
            matched.append(statement["Effect"])
    if "Deny" in matched:
        return "Deny"
    return "Allow" if "Allow" in matched else "ImplicitDeny"
