"""`deployer destroy --yes`: an environment removed in dependency order (fleets, then the
service, then the network), under the lock. The journal is kept: `history` still tells what
ran. A `protected` environment (or one whose stacks have termination protection) is refused.
"""

from __future__ import annotations

from typing import Any

from deployer.bake.access import ACCESS_ROLE
from deployer.bake.baker import BUILDER_ROLE
from deployer.errors import BadInput
from deployer.infra.stacks import STACK_DEADLINE_S
from deployer.release.engine import Engine
from deployer.release.following import stop_running

LEFTOVER_DEADLINE_S = 600  # a builder's termination, then its interface's detaching


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
    stacks = [names.runner_stack, names.service_stack, names.network_stack]
    if not engine.cfn.list_with_prefix(engine.names.fleet_stack_prefix) and not any(
        engine.cfn.describe(name) for name in stacks
    ):
        engine.report(f"destroy: nothing of {where} is left; nothing to do")
        return {"removed": [], "changed": False, "journal": "kept"}  # no lock taken
    inflight = engine.records.inflight()
    if inflight is not None and inflight.execution:  # it writes no more, and frees the lock
        stop_running(engine, inflight, "stopped by `deployer destroy`")
    with engine.records.locked(wait_s):
        fleets = engine.cfn.list_with_prefix(names.fleet_stack_prefix)
        fleets = [s for s in fleets if s.tags.get("deployer:app") == names.app]
        runner = engine.cfn.describe(names.runner_stack)
        service = engine.cfn.describe(names.service_stack)
        network = engine.cfn.describe(names.network_stack)
        held = [s.name for s in (service, network) if s is not None and s.termination_protected]
        if held:
            raise BadInput(
                f"{', '.join(held)} have termination protection (a protected environment); "
                "destroy refused"
            )
        infra = engine.stacks.existing()
        if infra is not None:  # a target group a listener forwards to cannot be deleted
            engine.report("destroy: the listeners stop forwarding (they answer 503)")
            engine.traffic.set_weights(infra.listener_arn, {})
            engine.traffic.set_weights(infra.test_listener_arn, {})
        removed = []
        for stack in [*fleets, runner, service, network]:
            if stack is None:
                continue
            if stack is network and stack.outputs.get("VpcId"):
                end_bake_leftovers(engine, stack.outputs["VpcId"])
            engine.report(f"destroy: deleting {stack.name}")
            engine.cfn.delete(stack.stack_id)
            engine.cfn.wait_deleted(stack.stack_id, STACK_DEADLINE_S)
            removed.append(stack.name)
    if not removed:
        engine.report(f"destroy: nothing of {where} is left; nothing to do")
    return {"removed": removed, "changed": bool(removed), "journal": "kept"}


def end_bake_leftovers(engine: Engine, vpc_id: str) -> list[str]:
    """What a killed bake left in the environment's VPC: its builder and its security group
    would fail the VPC's delete (DependencyViolation) and leave the network stack
    DELETE_FAILED. We hold the environment's lock, so no bake of ours runs there now.
    """
    ec2, app = engine.ec2, engine.names.app
    builders = [
        i["InstanceId"]
        for i in ec2.find_instances({"deployer:role": BUILDER_ROLE, "deployer:app": app})
        if i.get("VpcId") == vpc_id
    ]
    if builders:
        engine.report(f"destroy: terminating builders a killed bake left: {', '.join(builders)}")
        ec2.terminate(builders)
        ec2.wait_terminated(builders, LEFTOVER_DEADLINE_S)
    groups = [
        g["GroupId"]
        for g in ec2.find_security_groups({"deployer:role": ACCESS_ROLE, "deployer:app": app})
        if g.get("VpcId") == vpc_id
    ]
    for group in groups:
        engine.report(f"destroy: deleting {group}, a killed bake's security group")
        ec2.delete_security_group_when_free(group, LEFTOVER_DEADLINE_S)
    return builders + groups
