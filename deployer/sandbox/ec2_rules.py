"""EC2's rules that moto skips, for the API and for CloudFormation alike:

- dependencies: a VPC is not deleted while it holds a security group other than its default
  one or an attached internet gateway; a security group or a subnet is not deleted while an
  instance that is not terminated uses it (DependencyViolation, as EC2 answers);
- the account's quotas: 5 VPCs per Region (the default VPC counts) and 5 Elastic IP
  addresses per Region by default, answered with EC2's own codes, VpcLimitExceeded and
  AddressLimitExceeded. Service Quotas (GetServiceQuota) tells both, as it does on AWS. The
  `quotas` behaviour raises them, as an increase granted through Service Quotas would.
"""

from __future__ import annotations

from typing import Any

from moto.ec2.exceptions import DependencyViolationError, EC2ClientError
from moto.ec2.models.elastic_ip_addresses import ElasticAddressBackend
from moto.ec2.models.security_groups import SecurityGroupBackend
from moto.ec2.models.subnets import SubnetBackend
from moto.ec2.models.vpcs import VPCBackend
from moto.servicequotas.models import ServiceQuotasBackend

from deployer.sandbox.patching import Patches
from deployer.sandbox.world import WORLD

VPCS_PER_REGION = 5  # Service Quotas vpc/L-F678F1CE, "VPCs per Region"
ADDRESSES_PER_REGION = 5  # Service Quotas ec2/L-0263D0A3, "EC2-VPC Elastic IPs"
# Service Quotas ec2/L-1216C47A, running On-Demand standard vCPUs: an account's value depends
# on its history (new accounts start low and AWS raises it with use); this is one that has
# run instances for a while. Answered by Service Quotas only: launches are not refused.
STANDARD_VCPUS = 64
# (service code, quota code) -> (the behaviour's key, AWS's default, the quota's name)
QUOTAS = {
    ("vpc", "L-F678F1CE"): ("vpcs", VPCS_PER_REGION, "VPCs per Region"),
    ("ec2", "L-0263D0A3"): ("addresses", ADDRESSES_PER_REGION, "EC2-VPC Elastic IPs"),
    ("ec2", "L-1216C47A"): (
        "vcpus",
        STANDARD_VCPUS,
        "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances",
    ),
}


def quota(key: str) -> float:
    default = next(d for k, d, _ in QUOTAS.values() if k == key)
    return float(WORLD.behaviours.quotas.get(key, default))


class _LimitExceeded(EC2ClientError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


def _live_interfaces(backend: Any) -> list[Any]:
    return [
        nic
        for instance in backend.all_instances()
        if instance.state != "terminated"
        for nic in instance.nics.values()
    ]


def _create_vpc(self: VPCBackend, *args: Any, **kwargs: Any) -> Any:
    if len(self.vpcs) >= quota("vpcs"):
        raise _LimitExceeded("VpcLimitExceeded", "The maximum number of VPCs has been reached.")
    return PATCHES.original("create_vpc")(self, *args, **kwargs)


def _allocate_address(self: ElasticAddressBackend, *args: Any, **kwargs: Any) -> Any:
    if len(self.addresses) >= quota("addresses"):
        raise _LimitExceeded(
            "AddressLimitExceeded", "The maximum number of addresses has been reached."
        )
    return PATCHES.original("allocate_address")(self, *args, **kwargs)


def _delete_vpc(self: Any, vpc_id: str) -> Any:
    groups = [g for g in self.groups.get(vpc_id, {}).values() if g.name != "default"]
    gateways = [g for g in self.internet_gateways.values() if g.vpc and g.vpc.id == vpc_id]
    if groups or gateways:
        raise DependencyViolationError(
            f"The vpc '{vpc_id}' has dependencies and cannot be deleted."
        )
    return PATCHES.original("delete_vpc")(self, vpc_id)


def _delete_security_group(self: Any, name: str | None = None, group_id: str | None = None) -> Any:
    if group_id and any(
        group_id in {g.id for g in nic.group_set} for nic in _live_interfaces(self)
    ):
        raise DependencyViolationError(f"resource {group_id} has a dependent object")
    return PATCHES.original("delete_security_group")(self, name=name, group_id=group_id)


def _delete_subnet(self: Any, subnet_id: str) -> Any:
    if any(nic.subnet is not None and nic.subnet.id == subnet_id for nic in _live_interfaces(self)):
        raise DependencyViolationError(
            f"The subnet '{subnet_id}' has dependencies and cannot be deleted."
        )
    return PATCHES.original("delete_subnet")(self, subnet_id)


def _get_service_quota(self: ServiceQuotasBackend, service_code: str, quota_code: str) -> Any:
    known = QUOTAS.get((service_code, quota_code))
    if known is None:
        return PATCHES.original("get_service_quota")(self, service_code, quota_code)
    key, _, name = known
    return {
        "Adjustable": True,
        "GlobalQuota": False,
        "QuotaArn": f"arn:aws:servicequotas:{self.region_name}::{service_code}/{quota_code}",
        "QuotaCode": quota_code,
        "QuotaName": name,
        "ServiceCode": service_code,
        "ServiceName": service_code,
        "Unit": "None",
        "Value": quota(key),
    }


PATCHES = Patches()
PATCHES.add("create_vpc", VPCBackend, "create_vpc", _create_vpc)
PATCHES.add("delete_vpc", VPCBackend, "delete_vpc", _delete_vpc)
PATCHES.add("allocate_address", ElasticAddressBackend, "allocate_address", _allocate_address)
PATCHES.add(
    "delete_security_group", SecurityGroupBackend, "delete_security_group", _delete_security_group
)
PATCHES.add("delete_subnet", SubnetBackend, "delete_subnet", _delete_subnet)
PATCHES.add("get_service_quota", ServiceQuotasBackend, "get_service_quota", _get_service_quota)
apply = PATCHES.apply
restore = PATCHES.restore


def check_internals() -> list[str]:
    """What moved in moto that these rules rely on (empty when nothing did)."""
    import inspect

    moved = []
    for key, prefix in [
        ("delete_vpc", ["self", "vpc_id"]),
        ("delete_security_group", ["self", "name", "group_id"]),
        ("delete_subnet", ["self", "subnet_id"]),
        ("get_service_quota", ["self", "service_code", "quota_code"]),
    ]:
        params = list(inspect.signature(PATCHES.original(key)).parameters)
        if params[: len(prefix)] != prefix:
            moved.append(f"{key}{params}")
    for owner, attribute in [
        (VPCBackend.__init__, "vpcs"),
        (ElasticAddressBackend.__init__, "addresses"),
    ]:
        if attribute not in owner.__code__.co_names:
            moved.append(f"{owner.__qualname__}.{attribute}")
    return moved
