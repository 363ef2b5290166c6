"""`deployer destroy --yes`: an environment removed in dependency order (fleets, then the
service, then the network), under the lock. The journal is kept: `history` still tells what
ran. A `protected` environment (or one whose stacks have termination protection) is refused.
"""

from __future__ import annotations

from typing import Any

from deployer.engine import Engine
from deployer.errors import BadInput
from deployer.infra import STACK_DEADLINE_S


def destroy(engine: Engine, confirmed: bool, wait_s: float | None) -> dict[str, Any]:
    names = engine.names
    where = f"{names.app}/{names.environment}"
    if engine.spec.protected:
        raise BadInput(
            f"{engine.loaded.path}: protected: {where} is protected; destroy refused (set "
            "protected: false and release once, which lifts the protection, to destroy it)"
        )
    if not confirmed:
        raise BadInput(
            f"destroy removes every fleet, the load balancer and the network of {where}: "
            "pass --yes to confirm"
        )
    engine.check_reachable()
    with engine.locked(wait_s):
        fleets = engine.cfn.list_with_prefix(names.fleet_stack_prefix)
        fleets = [s for s in fleets if s.tags.get("deployer:app") == names.app]
        service = engine.cfn.describe(names.service_stack)
        network = engine.cfn.describe(names.network_stack)
        held = [s.name for s in (service, network) if s is not None and s.termination_protected]
        if held:
            raise BadInput(
                f"{', '.join(held)} have termination protection (a protected environment); "
                "destroy refused"
            )
        infra = engine.existing_infra()
        if infra is not None:  # a target group a listener forwards to cannot be deleted
            engine.report("destroy: the listeners stop forwarding (they answer 503)")
            engine.set_weights(infra.listener_arn, {})
            engine.set_weights(infra.test_listener_arn, {})
        removed = []
        for stack in [*fleets, service, network]:
            if stack is None:
                continue
            engine.report(f"destroy: deleting {stack.name}")
            engine.cfn.delete(stack.stack_id)
            engine.cfn.wait_deleted(stack.stack_id, STACK_DEADLINE_S)
            removed.append(stack.name)
    if not removed:
        engine.report(f"destroy: nothing of {where} is left; nothing to do")
    return {"removed": removed, "changed": bool(removed), "journal": "kept"}
