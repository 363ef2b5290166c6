"""Stack updates and load-balancer attributes as AWS applies them:

- a resource whose type moto cannot update in place is dropped by moto's update (its
  parsed resource becomes None, and every Ref or GetAtt of it, the stack's outputs included,
  then fails with a 500). AWS updates it in place: we keep it;
- an Application Load Balancer gets its LoadBalancerAttributes, at create and at update (moto
  ignores them), so `deletion_protection.enabled` means what it says;
- a load balancer with deletion protection refuses DeleteLoadBalancer (OperationNotPermitted),
  and so a stack delete, until the protection is turned off.
"""

from __future__ import annotations

from typing import Any

from moto.cloudformation import parsing
from moto.elbv2.exceptions import ELBClientError
from moto.elbv2.models import ELBv2Backend, FakeLoadBalancer, elbv2_backends

from deployer.sandbox.patching import Patches

LOAD_BALANCER = "AWS::ElasticLoadBalancingV2::LoadBalancer"


def _attributes(resource_json: dict[str, Any]) -> dict[str, str]:
    listed = resource_json.get("Properties", {}).get("LoadBalancerAttributes", []) or []
    return {
        str(a["Key"]): str(a["Value"]).lower() if isinstance(a["Value"], bool) else str(a["Value"])
        for a in listed
        if isinstance(a, dict) and a.get("Key") in FakeLoadBalancer.VALID_ATTRS
    }


def _apply_attributes(
    balancer: Any, resource_json: dict[str, Any], account: str, region: str
) -> None:
    attributes = _attributes(resource_json)
    if attributes:
        elbv2_backends[account][region].modify_load_balancer_attributes(balancer.arn, attributes)


def _create_load_balancer(
    cls: Any,
    resource_name: str,
    cloudformation_json: Any,
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> Any:
    original = PATCHES.original("create_from_cfn").__func__
    balancer = original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    _apply_attributes(balancer, cloudformation_json, account_id, region_name)
    return balancer


def _update_resource(
    logical_id: str,
    resource_json: dict[str, Any],
    resources_map: Any,
    account_id: str,
    region_name: str,
) -> Any:
    original = resources_map._parsed_resources.get(logical_id)
    updated = PATCHES.original("update_resource")(
        logical_id, resource_json, resources_map, account_id=account_id, region_name=region_name
    )
    if updated is not None:
        return updated
    # moto has no update for this type: AWS would update it in place, so it stays.
    if original is not None and resource_json.get("Type") == LOAD_BALANCER:
        resolved = parsing.clean_json(resource_json, resources_map)
        _apply_attributes(original, resolved, account_id, region_name)
    return original


def _delete_load_balancer(self: ELBv2Backend, arn: str) -> None:
    balancer = self.load_balancers.get(arn)
    if balancer is not None and balancer.attrs.get("deletion_protection.enabled") == "true":
        raise ELBClientError(
            "OperationNotPermitted",
            f"Load balancer '{arn}' cannot be deleted because deletion protection is enabled",
        )
    PATCHES.original("delete_load_balancer")(self, arn)


PATCHES = Patches()
PATCHES.add(
    "create_from_cfn",
    FakeLoadBalancer,
    "create_from_cloudformation_json",
    classmethod(_create_load_balancer),
)
PATCHES.add("update_resource", parsing, "parse_and_update_resource", _update_resource)
PATCHES.add("delete_load_balancer", ELBv2Backend, "delete_load_balancer", _delete_load_balancer)
apply = PATCHES.apply
restore = PATCHES.restore


def check_internals() -> list[str]:
    """What moved in moto that these rules rely on (empty when nothing did)."""
    import inspect

    moved = []
    params = list(inspect.signature(parsing.parse_and_update_resource).parameters)
    if params[:3] != ["logical_id", "resource_json", "resources_map"]:
        moved.append(f"parse_and_update_resource{params}")
    if "parse_and_update_resource" not in parsing.ResourceMap.update.__code__.co_names:
        moved.append("ResourceMap.update no longer calls parse_and_update_resource")
    if "attrs" not in FakeLoadBalancer.__init__.__code__.co_names:
        moved.append("FakeLoadBalancer.attrs")
    return moved
