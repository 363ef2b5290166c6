"""The account's side of a preflight, before any change: the EC2 quotas a run would pass
(a new network's VPC and Elastic IPs, the new fleet's and the builder's vCPUs), and the EBS
keys Auto Scaling must be allowed to use. Each shortfall is exit 5, naming what to do.
"""

from __future__ import annotations

import math

from deployer.aws.kms import Kms
from deployer.aws.servicequotas import ServiceQuotas
from deployer.aws.session import unreachable_as_error
from deployer.core.key_policy import auto_scaling_role, missing_for_launch
from deployer.core.quotas import (
    ADDRESSES,
    STANDARD_VCPUS,
    VPCS,
    QuotaUse,
    is_standard,
    network_needs,
    release_vcpus,
    shortfalls,
    standard_vcpus,
)
from deployer.errors import Unreachable
from deployer.infra.permissions import ebs_keys
from deployer.release.engine import Engine


def check_quotas(engine: Engine) -> None:
    """The VPC and the Elastic IPs a new (or widened) network makes must fit the account's
    quotas: short of them is exit 5 now, naming each quota, rather than a network stack
    that fails (VpcLimitExceeded, AddressLimitExceeded) once changes have begun.
    """
    spec = engine.spec
    with unreachable_as_error("read the network stack and the account's EC2 quotas"):
        stack = engine.cfn.describe(engine.names.network_stack)
        existing = None
        if stack is not None:
            params = stack.parameters
            existing = (int(params.get("AzCount", spec.azs)), params.get("NatMode", "single"))
        vpcs, addresses = network_needs(spec.azs, spec.network.nat, existing)
        if not vpcs and not addresses:
            return
        vpcs_in_use, addresses_in_use = engine.ec2.vpcs_and_addresses()
        quotas = ServiceQuotas(engine.runtime.aws)
        uses = []
        for (service, code, name, default), in_use, needed in (
            (VPCS, vpcs_in_use, vpcs),
            (ADDRESSES, addresses_in_use, addresses),
        ):
            limit = quotas.applied(service, code, default)
            if limit is None:
                engine.report(f"note: quota check of {name} skipped: Service Quotas refused")
                continue
            uses.append(QuotaUse(name, f"{service}/{code}", limit, in_use, needed))
    short = shortfalls(uses)
    if short:
        region = engine.runtime.aws.region
        raise Unreachable(
            f"{engine.loaded.path}: the network of {engine.names.scope} would pass the "
            f"account's EC2 quotas in {region}: " + "; ".join(short) + ". Ask for an increase "
            "in Service Quotas, free what is unused (other environments' VPCs, Elastic IPs), "
            "or need fewer (network.nat: single takes one Elastic IP). Nothing was changed."
        )


def check_vcpus(engine: Engine, bakes: bool) -> None:
    """The new fleet (and the builder, when it bakes) must fit the Region's running
    On-Demand standard vCPU quota beside what runs: short of it is exit 5 now, rather than a
    fleet whose launches fail (VcpuLimitExceeded) with blue and green half up.
    """
    spec = engine.spec
    builder = spec.bake.instance_type if bakes else None
    if not any(is_standard(t) for t in (spec.instance.type, builder) if t):
        return
    service, code, name = STANDARD_VCPUS
    with unreachable_as_error("read the account's running instances and vCPU quota"):
        running = engine.ec2.on_demand_types_running()
        vcpus = engine.ec2.vcpus_of([*running, spec.instance.type, *([builder] if builder else [])])
        limit = ServiceQuotas(engine.runtime.aws).applied(service, code, math.inf)
    if limit is None or math.isinf(limit):  # refused, or no applied value: no guess
        why = "Service Quotas refused" if limit is None else "Service Quotas has no value"
        engine.report(f"note: quota check of {name} skipped: {why}")
        return
    use = QuotaUse(
        name,
        f"{service}/{code}",
        limit,
        standard_vcpus(running, vcpus),
        release_vcpus(spec.capacity.desired, spec.instance.type, builder, vcpus),
    )
    short = shortfalls([use])
    if short:
        raise Unreachable(
            f"{engine.loaded.path}: {engine.names.scope} would pass the account's EC2 quota in "
            f"{engine.runtime.aws.region}: {short[0]} (the new fleet's {spec.capacity.desired} "
            f"x {spec.instance.type} start beside the live one"
            + (f", and a {builder} builder" if builder else "")
            + "). Ask for an increase in Service Quotas, stop what is unused, or lower "
            "capacity.desired. Nothing was changed."
        )


def check_keys_for_auto_scaling(engine: Engine) -> None:
    """A customer-managed EBS key (instance.kms_key_id, or the account's default) must let
    Auto Scaling's service-linked role use it: without that, every launch of the new fleet
    fails once changes have begun. Short of it is exit 5 now, naming the key and the fix.
    """
    kms = Kms(engine.runtime.aws)
    for key in ebs_keys(engine):
        role = auto_scaling_role(key.split(":")[1], engine.account)  # the key ARN's partition
        with unreachable_as_error(f"read the key policy of {key}"):
            found = kms.policy_and_grants(key)
        if found is None:
            engine.report(
                f"note: the policy of {key} was not read (kms:GetKeyPolicy, "
                "kms:ListGrants): whether Auto Scaling may use it is not checked"
            )
            continue
        missing = missing_for_launch(*found, role)
        if missing:
            raise Unreachable(
                f"{engine.loaded.path}: the EBS key {key} does not let Auto Scaling's "
                f"service-linked role ({role}) use it ({', '.join(missing)}): every instance "
                "of the new fleet would fail to launch. Add the two statements of AWS's "
                '"Required AWS KMS key policy for use with encrypted volumes" to the key '
                "policy (or create a grant for the role), or set instance.kms_key_id to a key "
                "that has them. Nothing was changed."
            )
