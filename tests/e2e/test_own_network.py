"""A team with its own VPC: the network is made beforehand with awscli, as an operator would,
and deployer.yaml names it. deployer checks it before any change, releases into it, and
makes no network stack of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import copy_project
from tests.e2e.conftest import Cli, served

pytestmark = pytest.mark.e2e

CONFIG = """\
app: hello
environment: byo
artifact: {{source: app}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 120}}
strategy: {{bake_seconds: 1}}
gates: {{interval_seconds: 0.5}}
network:
  vpc_id: {vpc}
  public_subnet_ids: [{public}]
  private_subnet_ids: [{private}]
"""


class Awscli:
    """The aws command of this environment, pointed at the sandbox."""

    def __init__(self, endpoint: str) -> None:
        self.aws = str(Path(sys.executable).parent / "aws")
        self.endpoint = endpoint
        self.env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def __call__(self, *args: str) -> dict:
        done = subprocess.run(
            [self.aws, "--endpoint-url", self.endpoint, "--output", "json", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout or "{}")


def make_network(aws: Awscli) -> dict[str, list[str] | str]:
    """A VPC with an internet gateway, two public subnets routing to it, and two private
    subnets behind a NAT gateway: what a platform team made earlier.
    """
    vpc = aws("ec2", "create-vpc", "--cidr-block", "10.77.0.0/16")["Vpc"]["VpcId"]
    igw = aws("ec2", "create-internet-gateway")["InternetGateway"]["InternetGatewayId"]
    aws("ec2", "attach-internet-gateway", "--vpc-id", vpc, "--internet-gateway-id", igw)

    def subnet(cidr: str, zone: str) -> str:
        made = aws(
            "ec2", "create-subnet", "--vpc-id", vpc, "--cidr-block", cidr,
            "--availability-zone", zone,
        )  # fmt: skip
        return str(made["Subnet"]["SubnetId"])

    def routed(subnets: list[str], **target: str) -> None:
        table = aws("ec2", "create-route-table", "--vpc-id", vpc)["RouteTable"]["RouteTableId"]
        ((option, value),) = target.items()
        aws(
            "ec2", "create-route", "--route-table-id", table,
            "--destination-cidr-block", "0.0.0.0/0", f"--{option}", value,
        )  # fmt: skip
        for subnet_id in subnets:
            aws("ec2", "associate-route-table", "--route-table-id", table, "--subnet-id", subnet_id)

    public = [subnet("10.77.0.0/24", "us-east-1a"), subnet("10.77.1.0/24", "us-east-1b")]
    private = [subnet("10.77.10.0/24", "us-east-1a"), subnet("10.77.11.0/24", "us-east-1b")]
    routed(public, **{"gateway-id": igw})
    address = aws("ec2", "allocate-address", "--domain", "vpc")["AllocationId"]
    nat = aws(
        "ec2", "create-nat-gateway", "--subnet-id", public[0], "--allocation-id", address
    )["NatGateway"]["NatGatewayId"]  # fmt: skip
    routed(private, **{"nat-gateway-id": nat})
    isolated = [subnet("10.77.20.0/24", "us-east-1a"), subnet("10.77.21.0/24", "us-east-1b")]
    return {"vpc": vpc, "public": public, "private": private, "isolated": isolated}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("byo")
    copy_project(workdir)
    cli = Cli(workdir)
    (workdir / "deployer.yaml").write_text("app: hello\nartifact: {source: app}\n")
    try:  # a failed set-up still takes its sandbox down
        up = cli("sandbox", "up")
        assert up.returncode == 0, up.stderr
        aws = Awscli(cli.json("sandbox", "status")["endpoint"])
        network = make_network(aws)
        for name, public, private in (
            ("deployer.yaml", network["public"], network["private"]),
            ("no-way-out.yaml", network["public"], network["isolated"]),
            ("no-gateway.yaml", network["isolated"], network["private"]),
        ):
            text = CONFIG.format(
                vpc=network["vpc"], public=", ".join(public), private=", ".join(private)
            )
            (workdir / name).write_text(text)
        (workdir / "elsewhere.yaml").write_text(
            CONFIG.format(
                vpc="vpc-0123456789abcdef0",
                public=", ".join(network["public"]),
                private=", ".join(network["private"]),
            )
        )
        yield cli, aws, network
    finally:
        cli("sandbox", "down")


def stacks(aws: Awscli) -> list[str]:
    return sorted(
        s["StackName"]
        for s in aws("cloudformation", "describe-stacks")["Stacks"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    )


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ("elsewhere.yaml", "network.vpc_id: vpc-0123456789abcdef0 does not exist in us-east-1"),
        ("no-way-out.yaml", "has no way out: no NAT gateway route"),
        ("no-gateway.yaml", "does not route 0.0.0.0/0 to an internet gateway"),
    ],
)
def test_a_network_that_will_not_do_exits_2_naming_the_field_before_any_change(
    project, config, says
):
    cli, aws, _ = project
    done = cli("release", "v1", "--output", "json", config=config)
    assert done.returncode == 2, done.stderr
    message = json.loads(done.stdout)["error"]["message"]
    assert config in message and says in message
    assert "network." in message
    assert stacks(aws) == []


def test_a_release_into_your_own_vpc_makes_no_network_stack(project):
    cli, aws, network = project
    released = cli.json("release", "v1")
    assert served(released["url"]) == {"hello from v1"}
    assert "hello-byo-network" not in stacks(aws)
    assert "hello-byo-service" in stacks(aws)

    (balancer,) = aws("elbv2", "describe-load-balancers")["LoadBalancers"]
    assert balancer["VpcId"] == network["vpc"]
    assert sorted(z["SubnetId"] for z in balancer["AvailabilityZones"]) == sorted(network["public"])
    (group,) = aws("autoscaling", "describe-auto-scaling-groups")["AutoScalingGroups"]
    assert sorted(group["VPCZoneIdentifier"].split(",")) == sorted(network["private"])
    instances = [
        i
        for r in aws(
            "ec2",
            "describe-instances",
            "--instance-ids",
            *[i["InstanceId"] for i in group["Instances"]],
        )["Reservations"]  # fmt: skip
        for i in r["Instances"]
    ]
    assert instances and all(i["SubnetId"] in network["private"] for i in instances)
    assert not [i for i in instances if i.get("PublicIpAddress")]

    plan = cli.json("plan", "v1")
    assert [row["stack"] for row in plan["infra"]] == ["hello-byo-service"]


def make_load_balancer(aws: Awscli, network: dict) -> dict[str, str]:
    """The team's own ALB in its VPC: a production listener whose default action and rule
    (priority 1: /admin) are theirs, and a listener for tests.
    """
    group = aws(
        "ec2", "create-security-group", "--group-name", "team-alb", "--description", "ours",
        "--vpc-id", network["vpc"],
    )["GroupId"]  # fmt: skip
    balancer = aws(
        "elbv2", "create-load-balancer", "--name", "team-alb", "--type", "application",
        "--subnets", *network["public"], "--security-groups", group,
    )["LoadBalancers"][0]["LoadBalancerArn"]  # fmt: skip

    def listener(port: int, body: str) -> str:
        action = (
            "Type=fixed-response,FixedResponseConfig={StatusCode=404,ContentType=text/plain,"
            f"MessageBody={body}}}"
        )
        made = aws(
            "elbv2", "create-listener", "--load-balancer-arn", balancer, "--protocol", "HTTP",
            "--port", str(port), "--default-actions", action,
        )  # fmt: skip
        return str(made["Listeners"][0]["ListenerArn"])

    production, test = listener(80, "yours"), listener(8081, "tests")
    aws(
        "elbv2", "create-rule", "--listener-arn", production, "--priority", "1",
        "--conditions", "Field=path-pattern,Values=/admin",
        "--actions", "Type=fixed-response,FixedResponseConfig={StatusCode=403}",
    )  # fmt: skip
    return {"balancer": balancer, "production": production, "test": test}


def test_with_your_own_load_balancer_deployer_manages_only_its_weights_rule(project):
    cli, aws, network = project
    mine = make_load_balancer(aws, network)
    base = CONFIG.format(
        vpc=network["vpc"],
        public=", ".join(network["public"]),
        private=", ".join(network["private"]),
    ).replace("environment: byo", "environment: team")
    service = f"service: {{listener_arn: {mine['production']}, test_listener_arn: {mine['test']}"
    (cli.workdir / "taken.yaml").write_text(base + service + "}\n")
    (cli.workdir / "team.yaml").write_text(base + service + ", rule_priority: 10}\n")
    balancers = len(aws("elbv2", "describe-load-balancers")["LoadBalancers"])

    taken = cli("release", "v1", "--output", "json", config="taken.yaml")
    assert taken.returncode == 2, taken.stderr
    message = json.loads(taken.stdout)["error"]["message"]
    assert "service.rule_priority: priority 1 of" in message
    assert "taken by a rule of yours" in message
    assert "hello-team-service" not in stacks(aws)

    released = cli("release", "v1", "--output", "json", config="team.yaml")
    assert released.returncode == 0, released.stderr
    url = json.loads(released.stdout)["url"]
    assert served(url) == {"hello from v1"}
    assert len(aws("elbv2", "describe-load-balancers")["LoadBalancers"]) == balancers
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url + "admin", timeout=5)
    assert refused.value.code == 403  # the team's own rule still matches first

    destroyed = cli("destroy", "--yes", "--output", "json", config="team.yaml")
    assert destroyed.returncode == 0, destroyed.stderr
    rules = aws("elbv2", "describe-rules", "--listener-arn", mine["production"])["Rules"]
    assert sorted(r["Priority"] for r in rules) == ["1", "default"]
    (listener,) = aws("elbv2", "describe-listeners", "--listener-arns", mine["production"])[
        "Listeners"
    ]
    assert listener["DefaultActions"][0]["FixedResponseConfig"]["MessageBody"] == "yours"
    assert not [s for s in stacks(aws) if s.startswith("hello-team-")]


def test_a_network_without_nat_needs_an_endpoint_for_each_service_the_hosts_use(project):
    """Private subnets with no NAT: s3 and ssm endpoints alone leave exec, logs and the hosts'
    metrics unable to work, so the check refuses them, naming each missing endpoint and what
    it is for; with all of them it passes. `check` changes nothing either way.
    """
    cli, aws, network = project
    vpc = network["vpc"]
    (main,) = aws(
        "ec2", "describe-route-tables", "--filters", f"Name=vpc-id,Values={vpc}",
        "Name=association.main,Values=true",
    )["RouteTables"]  # fmt: skip
    isolated_table = main["RouteTableId"]  # the isolated subnets have no table of their own

    def endpoint(service: str) -> None:
        name = f"com.amazonaws.us-east-1.{service}"
        if service == "s3":
            options = ["--vpc-endpoint-type", "Gateway", "--route-table-ids", isolated_table]
        else:
            options = [
                "--vpc-endpoint-type", "Interface", "--private-dns-enabled",
                "--subnet-ids", *network["isolated"],
            ]  # fmt: skip
        aws("ec2", "create-vpc-endpoint", "--vpc-id", vpc, "--service-name", name, *options)

    for service in ("s3", "ssm"):
        endpoint(service)
    refused = cli("check", "--output", "json", config="no-way-out.yaml")
    assert refused.returncode == 2, refused.stderr
    message = json.loads(refused.stdout)["error"]["message"]
    assert "network.private_subnet_ids" in message and "no-way-out.yaml" in message
    for service, what in (
        ("ssmmessages", "deployer exec"),
        ("ec2messages", "Run Command"),
        ("logs", "deployer logs"),
        ("monitoring", "metrics"),
        ("ec2", "DescribeTags"),
    ):
        assert f"{service}: " in message and what in message, service

    for service in ("ssmmessages", "ec2messages", "logs", "monitoring", "ec2"):
        endpoint(service)
    passed = cli("check", "--output", "json", config="no-way-out.yaml")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "hello-byo-network" not in stacks(aws)
