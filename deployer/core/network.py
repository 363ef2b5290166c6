"""Judging an operator's own network (network.vpc_id) before anything changes: the subnets
exist in that VPC and span two AZs or more, the public ones route to an internet gateway,
and the private ones have a way out. Pure: the facts are EC2's Describe* answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_ROUTE = "0.0.0.0/0"
# Where a private subnet's default route may lead and still get out: a NAT gateway, a
# transit gateway or Cloud WAN, an appliance (instance, interface, Gateway Load Balancer
# endpoint), a virtual private gateway, a local or carrier gateway.
WAYS_OUT = (
    "NatGatewayId",
    "TransitGatewayId",
    "CoreNetworkArn",
    "NetworkInterfaceId",
    "InstanceId",
    "LocalGatewayId",
    "CarrierGatewayId",
)
WAY_OUT_GATEWAYS = ("vgw-", "vpce-")
# Without NAT, the instances reach these services through VPC endpoints, each for a reason
# ("Use VPC endpoints to improve the security of EC2 instances" (Systems Manager); the
# CloudWatch agent's "Using VPC endpoints" pages).
NEEDED_ENDPOINTS = {
    "s3": "the SSM agent's and Run Command's own downloads (a gateway endpoint)",
    "ssm": "the settings at boot and the SSM agent's registration",
    "ssmmessages": "`deployer exec` (Run Command's channel to the agent)",
    "ec2messages": "Run Command's delivery of `deployer exec` commands",
    "logs": "`deployer logs` and failures' last lines (the CloudWatch agent ships them)",
    "monitoring": "the hosts' memory and disk metrics (the CloudWatch agent)",
    "ec2": "the agent's Auto Scaling group dimension (ec2:DescribeTags)",
}


@dataclass(frozen=True)
class NetworkFacts:
    vpc: Mapping[str, Any] | None
    subnets: Mapping[str, Mapping[str, Any]]  # by id, those asked that exist
    route_tables: Sequence[Mapping[str, Any]]
    endpoints: Sequence[Mapping[str, Any]]


def network_problems(
    facts: NetworkFacts,
    vpc_id: str,
    public: Sequence[str],
    private: Sequence[str],
    region: str,
    azs: int = 2,
) -> list[str]:
    """Each problem names its field (network.…, or azs) and the reason; [] when the network
    will do. `azs`: the Availability Zones deployer.yaml asks the fleet to span.
    """
    if facts.vpc is None:
        return [f"network.vpc_id: {vpc_id} does not exist in {region}"]
    problems = []
    for field, ids in (("public_subnet_ids", public), ("private_subnet_ids", private)):
        found = []
        for subnet_id in ids:
            subnet = facts.subnets.get(subnet_id)
            if subnet is None:
                problems.append(f"network.{field}: {subnet_id} does not exist in {region}")
            elif subnet.get("VpcId") != vpc_id:
                problems.append(
                    f"network.{field}: {subnet_id} is in {subnet.get('VpcId')}, not in "
                    f"vpc_id {vpc_id}"
                )
            else:
                found.append(subnet)
        zones = sorted({str(s.get("AvailabilityZone")) for s in found})
        if found and len(zones) < 2:
            problems.append(
                f"network.{field}: all in {', '.join(zones)}; give subnets in two "
                "Availability Zones or more (the load balancer and the fleets span them)"
            )
        elif found and len(zones) < azs:
            problems.append(
                f"azs: {azs} Availability Zones asked, but network.{field} span "
                f"{len(zones)} ({', '.join(zones)}); give subnets in {azs} AZs or set "
                f"azs: {len(zones)}"
            )
        for subnet in found:
            why = (_public_problem if field == "public_subnet_ids" else _private_problem)(
                facts, subnet["SubnetId"], region
            )
            if why:
                problems.append(f"network.{field}: {subnet['SubnetId']} {why}")
    return problems


def route_table_of(facts: NetworkFacts, subnet_id: str) -> Mapping[str, Any] | None:
    """The subnet's own route table, else the VPC's main one (as EC2 routes it)."""
    main = None
    for table in facts.route_tables:
        for association in table.get("Associations", []):
            if association.get("SubnetId") == subnet_id:
                return table
            if association.get("Main"):
                main = table
    return main


def _default_route(table: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    for route in (table or {}).get("Routes", []):
        if route.get("DestinationCidrBlock") == DEFAULT_ROUTE and route.get("State") == "active":
            return route
    return None


def _public_problem(facts: NetworkFacts, subnet_id: str, region: str) -> str:
    table = route_table_of(facts, subnet_id)
    route = _default_route(table)
    if route is not None and str(route.get("GatewayId", "")).startswith("igw-"):
        return ""
    where = f"route table {table['RouteTableId']}" if table else "no route table"
    return (
        f"does not route {DEFAULT_ROUTE} to an internet gateway ({where}); the load balancer "
        "and the image builder need one"
    )


def _private_problem(facts: NetworkFacts, subnet_id: str, region: str) -> str:
    table = route_table_of(facts, subnet_id)
    route = _default_route(table)
    if route is not None and any(route.get(key) for key in WAYS_OUT):
        return ""
    if route is not None and str(route.get("GatewayId", "")).startswith(WAY_OUT_GATEWAYS):
        return ""
    if route is not None and str(route.get("GatewayId", "")).startswith("igw-"):
        return (
            f"routes {DEFAULT_ROUTE} to an internet gateway: it is a public subnet, where "
            "instances without public IPs have no way out; give subnets behind a NAT gateway"
        )
    table_id = str((table or {}).get("RouteTableId", ""))
    missing = [
        service
        for service in NEEDED_ENDPOINTS
        if not _has_endpoint(facts, f"com.amazonaws.{region}.{service}", table_id)
    ]
    if not missing:
        return ""
    reasons = "; ".join(f"{service}: {NEEDED_ENDPOINTS[service]}" for service in missing)
    return (
        f"has no way out: no NAT gateway route ({DEFAULT_ROUTE} → nat-…) in "
        f"{table_id or 'its route table'}, and no VPC endpoint (private DNS on) for "
        f"{', '.join(missing)} ({reasons})"
    )


def _has_endpoint(facts: NetworkFacts, service_name: str, table_id: str) -> bool:
    for endpoint in facts.endpoints:
        if endpoint.get("ServiceName") != service_name:
            continue
        if endpoint.get("State", "available").lower() not in ("available", "pending"):
            continue
        if endpoint.get("VpcEndpointType") == "Gateway":
            if table_id in endpoint.get("RouteTableIds", []):
                return True
        elif endpoint.get("PrivateDnsEnabled"):  # else the SDKs resolve the public endpoint
            return True
    return False
