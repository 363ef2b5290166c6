"""Judging an operator's own network from EC2's answers: what will do and what will not."""

from __future__ import annotations

from deployer.core.network import NetworkFacts, network_problems

VPC = "vpc-00000000000000001"
REGION = "eu-west-1"


def subnet(subnet_id: str, zone: str, vpc: str = VPC) -> dict:
    return {"SubnetId": subnet_id, "AvailabilityZone": zone, "VpcId": vpc}


def table(table_id: str, subnets: list[str], main: bool = False, **default_route: str) -> dict:
    associations = [{"SubnetId": s} for s in subnets] + ([{"Main": True}] if main else [])
    routes = [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local", "State": "active"}]
    if default_route:
        routes.append({"DestinationCidrBlock": "0.0.0.0/0", "State": "active", **default_route})
    return {"RouteTableId": table_id, "Associations": associations, "Routes": routes}


PUBLIC = ["subnet-0000000a", "subnet-0000000b"]
PRIVATE = ["subnet-0000001a", "subnet-0000001b"]
SUBNETS = {
    **{s: subnet(s, f"eu-west-1{s[-1]}") for s in PUBLIC},
    **{s: subnet(s, f"eu-west-1{s[-1]}") for s in PRIVATE},
}


def problems(tables: list[dict], endpoints: list[dict] = (), subnets=SUBNETS) -> list[str]:
    facts = NetworkFacts({"VpcId": VPC}, subnets, tables, list(endpoints))
    return network_problems(facts, VPC, PUBLIC, PRIVATE, REGION)


def test_public_subnets_to_an_internet_gateway_and_private_ones_behind_nat_will_do():
    assert (
        problems(
            [
                table("rtb-pub", PUBLIC, GatewayId="igw-1"),
                table("rtb-priv", PRIVATE, NatGatewayId="nat-1"),
            ]
        )
        == []
    )


def test_a_subnet_without_its_own_table_is_routed_by_the_main_one():
    tables = [table("rtb-main", [], main=True, GatewayId="igw-1")]
    found = problems(tables)
    assert not [p for p in found if "public_subnet_ids" in p]
    assert len([p for p in found if "is a public subnet" in p]) == 2


def endpoint(service: str, **shape) -> dict:
    if service == "s3":
        return {
            "ServiceName": f"com.amazonaws.{REGION}.s3",
            "VpcEndpointType": "Gateway",
            "RouteTableIds": ["rtb-priv"],
            "State": "available",
            **shape,
        }
    return {
        "ServiceName": f"com.amazonaws.{REGION}.{service}",
        "VpcEndpointType": "Interface",
        "PrivateDnsEnabled": True,
        "State": "available",
        **shape,
    }


EVERY_ENDPOINT = ["s3", "ssm", "ssmmessages", "ec2messages", "logs", "monitoring", "ec2"]


def test_private_subnets_without_nat_need_an_endpoint_for_each_service_the_hosts_use():
    tables = [table("rtb-pub", PUBLIC, GatewayId="igw-1"), table("rtb-priv", PRIVATE)]
    assert problems(tables, [endpoint(s) for s in EVERY_ENDPOINT]) == []
    (first, second) = problems(tables)
    assert "has no way out" in first and "rtb-priv" in first
    assert all(s in first for s in EVERY_ENDPOINT)
    # s3 and ssm alone: exec, logs and the hosts' metrics could not work. Each missing one is
    # named with what it is for.
    found = problems(tables, [endpoint("s3"), endpoint("ssm")])
    assert len(found) == 2
    for needed, what in (
        ("ssmmessages", "deployer exec"),
        ("ec2messages", "Run Command"),
        ("logs", "deployer logs"),
        ("monitoring", "metrics"),
        ("ec2", "DescribeTags"),
    ):
        assert f"{needed}: " in found[0] and what in found[0], needed
    assert "s3: " not in found[0] and "ssm: " not in found[0]


def test_an_endpoint_elsewhere_without_private_dns_or_deleted_does_not_count():
    tables = [table("rtb-pub", PUBLIC, GatewayId="igw-1"), table("rtb-priv", PRIVATE)]
    others = [endpoint(s) for s in EVERY_ENDPOINT if s not in ("s3", "logs")]
    assert problems(tables, [*others, endpoint("s3"), endpoint("logs")]) == []
    for wrong in (
        endpoint("s3", RouteTableIds=["rtb-other"]),
        endpoint("logs", PrivateDnsEnabled=False),  # the SDKs would resolve the public name
        endpoint("logs", State="deleted"),
    ):
        rest = [endpoint("s3"), endpoint("logs")]
        rest = [e for e in rest if e["ServiceName"] != wrong["ServiceName"]]
        assert problems(tables, [*others, *rest, wrong]), wrong


def test_a_transit_gateway_or_an_inspection_endpoint_is_a_way_out():
    for target in ({"TransitGatewayId": "tgw-1"}, {"GatewayId": "vpce-1"}):
        tables = [
            table("rtb-pub", PUBLIC, GatewayId="igw-1"),
            table("rtb-priv", PRIVATE, **target),
        ]
        assert problems(tables) == []


def test_a_blackholed_gateway_route_is_no_route():
    tables = [
        table("rtb-pub", PUBLIC, GatewayId="igw-1", **{"State": "blackhole"}),
        table("rtb-priv", PRIVATE, NatGatewayId="nat-1"),
    ]
    found = problems(tables)
    assert len(found) == 2 and all("does not route 0.0.0.0/0" in p for p in found)


def test_subnets_in_one_zone_or_another_vpc_or_nowhere_are_named():
    subnets = {
        **SUBNETS,
        "subnet-0000000b": subnet("subnet-0000000b", "eu-west-1a"),
        "subnet-0000001b": subnet("subnet-0000001b", "eu-west-1b", vpc="vpc-0000000000000000f"),
    }
    del subnets["subnet-0000001a"]
    tables = [
        table("rtb-pub", PUBLIC, GatewayId="igw-1"),
        table("rtb-priv", PRIVATE, NatGatewayId="nat-1"),
    ]
    found = problems(tables, subnets=subnets)
    assert "network.public_subnet_ids: all in eu-west-1a; give subnets in two" in found[0]
    assert f"network.private_subnet_ids: subnet-0000001a does not exist in {REGION}" in found
    assert (
        f"network.private_subnet_ids: subnet-0000001b is in vpc-0000000000000000f, not in "
        f"vpc_id {VPC}" in found
    )


def test_a_vpc_that_does_not_exist_is_the_one_problem():
    facts = NetworkFacts(None, {}, [], [])
    assert network_problems(facts, VPC, PUBLIC, PRIVATE, REGION) == [
        f"network.vpc_id: {VPC} does not exist in {REGION}"
    ]


def test_azs_three_with_subnets_in_two_zones_is_refused_naming_azs():
    """Accepted silently before: the fleet would span two AZs while the config says three."""
    facts = NetworkFacts(
        {"VpcId": VPC},
        SUBNETS,
        [
            table("rtb-pub", PUBLIC, GatewayId="igw-1"),
            table("rtb-priv", PRIVATE, NatGatewayId="nat-1"),
        ],
        [],
    )
    found = network_problems(facts, VPC, PUBLIC, PRIVATE, REGION, azs=3)
    assert found and all(p.startswith("azs: 3 Availability Zones asked") for p in found)
    assert any("network.private_subnet_ids span 2" in p for p in found)
    assert network_problems(facts, VPC, PUBLIC, PRIVATE, REGION, azs=2) == []
