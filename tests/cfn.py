"""Reading our CloudFormation templates in tests: their short-form functions (!Sub, !Ref ...)
read as plain values.
"""

from __future__ import annotations

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
