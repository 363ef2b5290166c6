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


def test_private_subnets_without_nat_need_endpoints_for_s3_and_ssm():
    tables = [table("rtb-pub", PUBLIC, GatewayId="igw-1"), table("rtb-priv", PRIVATE)]
    s3 = {
        "ServiceName": f"com.amazonaws.{REGION}.s3",
        "VpcEndpointType": "Gateway",
        "RouteTableIds": ["rtb-priv"],
        "State": "available",
    }
    ssm = {
        "ServiceName": f"com.amazonaws.{REGION}.ssm",
        "VpcEndpointType": "Interface",
        "PrivateDnsEnabled": True,
    }
    (first, second) = problems(tables)
    assert "has no way out" in first and "s3 and ssm" in first and "rtb-priv" in first
    assert problems(tables, [s3, ssm]) == []
    only_s3 = problems(tables, [s3])
    assert only_s3 and all("endpoint for ssm" in p for p in only_s3)
    elsewhere = {**s3, "RouteTableIds": ["rtb-other"]}
    assert problems(tables, [elsewhere, ssm])
    no_private_dns = {**ssm, "PrivateDnsEnabled": False}
    assert problems(tables, [s3, no_private_dns])


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
