"""`deployer plan` for the network and service stacks: what `release` would change in them,
resource by resource, from CloudFormation change sets that are deleted afterwards. A stack
whose template and parameters are unchanged costs no change set (its fingerprint says so); a
stack that does not exist yet would be created whole. Nothing else is written.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from deployer.infra.stacks import StackSpec, fingerprint
from deployer.release.engine import Engine


def plan_infra(engine: Engine, more: Sequence[StackSpec] = ()) -> list[dict[str, Any]]:
    """`more`: stacks beside the network and service (the runner's, executor: stepfunctions)."""
    network = None if engine.spec.network.own else engine.cfn.describe(engine.names.network_stack)
    specs = [*engine.stacks.specs(network.outputs if network is not None else {}), *more]
    rows = []
    for spec in specs:
        stack = engine.cfn.describe(spec.name)
        row: dict[str, Any] = {"stack": spec.name, "changes": [], "parameters": []}
        if stack is None or stack.status in ("DELETE_COMPLETE", "ROLLBACK_COMPLETE"):
            row["action"] = "create"
        elif stack.tags.get("deployer:fingerprint") == fingerprint(spec.body, spec.parameters):
            row["action"] = "unchanged"
        else:
            row["parameters"] = [
                {"name": key, "from": stack.parameters.get(key), "to": value}
                for key, value in spec.parameters.items()
                if stack.parameters.get(key) != value
            ]
            tags = {**spec.tags, "deployer:fingerprint": fingerprint(spec.body, spec.parameters)}
            name = f"deployer-plan-{secrets.token_hex(4)}"
            # By name: the stack exists (just described), and CreateChangeSet takes either.
            row["changes"] = engine.cfn.preview(stack.name, spec.body, spec.parameters, tags, name)
            row["action"] = "update" if row["changes"] or row["parameters"] else "unchanged"
        rows.append(row)
    return rows
