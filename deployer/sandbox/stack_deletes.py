"""Stacks are deleted as CloudFormation deletes them, and refuse what AWS refuses:

- every resource the stack made is deleted, dependents first. moto's CloudFormation cannot
  delete many types (internet gateways and their attachments, route tables, routes and
  associations, Elastic IPs, NAT gateways, VPC endpoints, target groups, listeners, rules):
  it skips them and the VPC then stays, orphaned, with its addresses and target groups. The
  deleters below do what CloudFormation's handlers do;
- a resource that cannot be deleted (a VPC still holding a security group the stack does not
  own, say) fails with EC2's reason: the resource DELETE_FAILED, the stack DELETE_FAILED and
  still there, as on AWS; a later DeleteStack tries again;
- a stack with termination protection refuses DeleteStack (ValidationError), and
  UpdateTerminationProtection, which moto lacks, turns it on and off;
- DescribeStackResources and ListStackResources list the resources that exist, not a
  conditional one the stack never made (moto lists those with no type and no id).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import Stack
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.elbv2.models import elbv2_backends

from deployer.sandbox.patching import Patches
from deployer.sandbox.template_refs import references

log = logging.getLogger("deployer.sandbox.stack_deletes")
Deleter = Callable[[Any, str, str], None]  # (resource, account, region)


def _ec2(account: str, region: str) -> Any:
    return ec2_backends[account][region]


def _detach_gateway(attachment: Any, account: str, region: str) -> None:
    ec2 = _ec2(account, region)
    igw = ec2.get_internet_gateway(attachment.gateway_id)
    if igw.vpc is not None and igw.vpc.id == attachment.vpc_id:
        ec2.detach_internet_gateway(attachment.gateway_id, attachment.vpc_id)


def _delete_gateway(igw: Any, account: str, region: str) -> None:
    _ec2(account, region).delete_internet_gateway(igw.id)


def _delete_route_table(table: Any, account: str, region: str) -> None:
    _ec2(account, region).delete_route_table(table.id)


def _delete_route(route: Any, account: str, region: str) -> None:
    table = route.route_table
    if route.id in table._routes:
        _ec2(account, region).delete_route(table.id, route.destination_cidr_block)


def _disassociate(association: Any, account: str, region: str) -> None:
    ec2 = _ec2(account, region)
    table = ec2.route_tables.get(association.route_table_id)
    for association_id, subnet in list(getattr(table, "_associations", {}).items()):
        if subnet == association.subnet_id:
            ec2.disassociate_route_table(association_id)


def _release_address(address: Any, account: str, region: str) -> None:
    ec2 = _ec2(account, region)
    if address in ec2.addresses:
        ec2.release_address(allocation_id=address.allocation_id)


def _delete_nat_gateway(gateway: Any, account: str, region: str) -> None:
    _ec2(account, region).delete_nat_gateway(gateway.id)


def _delete_endpoint(endpoint: Any, account: str, region: str) -> None:
    _ec2(account, region).delete_vpc_endpoints([endpoint.id])


def _delete_target_group(group: Any, account: str, region: str) -> None:
    elb = elbv2_backends[account][region]
    if group.arn in elb.target_groups:
        elb.delete_target_group(group.arn)


def _delete_listener(listener: Any, account: str, region: str) -> None:
    elb = elbv2_backends[account][region]
    for balancer in elb.load_balancers.values():
        balancer.listeners.pop(listener.arn, None)


def _delete_rule(rule: Any, account: str, region: str) -> None:
    elbv2_backends[account][region].delete_rule(rule.arn)


DELETERS: dict[str, Deleter] = {
    "AWS::EC2::VPCGatewayAttachment": _detach_gateway,
    "AWS::EC2::InternetGateway": _delete_gateway,
    "AWS::EC2::RouteTable": _delete_route_table,
    "AWS::EC2::Route": _delete_route,
    "AWS::EC2::SubnetRouteTableAssociation": _disassociate,
    "AWS::EC2::EIP": _release_address,
    "AWS::EC2::NatGateway": _delete_nat_gateway,
    "AWS::EC2::VPCEndpoint": _delete_endpoint,
    "AWS::ElasticLoadBalancingV2::TargetGroup": _delete_target_group,
    "AWS::ElasticLoadBalancingV2::Listener": _delete_listener,
    "AWS::ElasticLoadBalancingV2::ListenerRule": _delete_rule,
}


def _reason(exc: Exception) -> str:
    code = getattr(exc, "error_type", "") or getattr(exc, "code", "") or type(exc).__name__
    message = getattr(exc, "message", "") or str(exc)
    return f"{message} (Status Code: 400, Error Code: {code})"


def delete_resources(stack: Stack) -> dict[str, str]:
    """Delete what the stack made in reverse dependency order, as CloudFormation does: a
    resource goes once nothing left in the stack refers to it. Returns {logical id: reason}
    of the resources that could not go (and those that still refer to them).
    """

    try:  # moto resolves outputs lazily, from resources that are about to go: resolve now
        _ = stack.outputs
    except Exception as exc:  # noqa: BLE001 - outputs are a view; the delete goes on
        log.warning("the outputs of %s: %s", stack.name, exc)
    resources = stack.resource_map
    parsed, bodies = resources._parsed_resources, resources._resource_json_map
    remaining = [
        name
        for name, body in bodies.items()
        if parsed.get(name) is not None and body.get("DeletionPolicy") != "Retain"
    ]
    needs = {name: _dependencies(bodies[name], references) & set(remaining) for name in remaining}
    failures: dict[str, str] = {}
    progress = True
    while remaining and progress:
        progress = False
        for name in list(remaining):
            if any(name in needs[other] for other in remaining if other != name):
                continue  # something still refers to it: it goes after that
            resource, body = parsed[name], bodies[name]
            deleter = DELETERS.get(str(body.get("Type", "")))
            try:
                if deleter is not None:
                    deleter(resource, stack.account_id, stack.region_name)
                else:
                    resources._delete_resource(resource, body)
            except Exception as exc:  # noqa: BLE001 - the reason is the resource's failure
                failures[name] = _reason(exc)
                continue
            parsed.pop(name, None)
            remaining.remove(name)
            failures.pop(name, None)
            progress = True
    return {name: failures[name] for name in remaining if name in failures} or {
        name: "a resource it depends on could not be deleted" for name in remaining
    }


def _dependencies(body: dict[str, Any], references: Callable[[Any], Any]) -> set[str]:
    found = set(references(body.get("Properties", {})))
    depends = body.get("DependsOn", [])
    return found | ({depends} if isinstance(depends, str) else set(depends))


def refuse_if_protected(stack: Stack) -> None:
    if getattr(stack, "enable_termination_protection", False):
        raise ValidationError(
            stack.name,
            f"Stack [{stack.name}] cannot be deleted while TerminationProtection is enabled",
        )


def _update_termination_protection(self: CloudFormationResponse) -> Any:
    name = self._get_param("StackName")
    enabled = str(self._get_param("EnableTerminationProtection")).lower() == "true"
    backend = self.cloudformation_backend
    stack = backend.stacks.get(name) or next(
        (s for s in backend.stacks.values() if s.name == name), None
    )
    if stack is None:
        raise ValidationError(name)
    stack.enable_termination_protection = enabled
    return ActionResult({"StackId": stack.stack_id})


def _stack_resources(self: Stack) -> list[Any]:
    return [resource for resource in self.resource_map.values() if resource is not None]


PATCHES = Patches()
PATCHES.add(
    "stack_resources",
    Stack,
    "stack_resources",
    property(_stack_resources),
)


def apply() -> None:
    PATCHES.apply()
    # An action moto lacks: added, not replaced.
    CloudFormationResponse.update_termination_protection = (  # type: ignore[attr-defined]
        _update_termination_protection
    )


def restore() -> None:
    PATCHES.restore()
    if hasattr(CloudFormationResponse, "update_termination_protection"):
        del CloudFormationResponse.update_termination_protection


def check_internals() -> list[str]:
    """What moved in moto that these rules rely on (empty when nothing did)."""
    moved = []
    from moto.cloudformation.parsing import ResourceMap

    if not hasattr(ResourceMap, "_delete_resource"):
        moved.append("ResourceMap._delete_resource")
    if "enable_termination_protection" not in Stack.__init__.__code__.co_names:
        moved.append("Stack.enable_termination_protection")
    from moto.cloudformation.parsing import OutputMap

    if "_parsed_outputs" not in OutputMap.__init__.__code__.co_names:
        moved.append("OutputMap._parsed_outputs")
    if not isinstance(Stack.__dict__.get("stack_resources"), property):
        moved.append("Stack.stack_resources")
    return moved
