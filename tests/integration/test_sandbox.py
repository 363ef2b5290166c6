"""The sandbox makes moto behave like AWS where deployer depends on it:
instances become real local hosts, target health comes from real HTTP probes, images carry
what was installed on the builder, and the ALB forwards real requests by listener weights.
"""

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from deployer.aws.elbv2 import forward_action
from deployer.aws.poller import Poll, Poller
from deployer.sandbox import control, patches
from deployer.sandbox.layout import Layout
from tests.conftest import REPO

pytestmark = pytest.mark.integration
BASE_AMI = "ami-03c3da4cfa8e8943a"
POLL = Poller(first_interval=0.05, max_interval=0.2)


def test_the_moto_internals_we_patch_are_still_there():
    patches.check_internals()


def wait_host(layout, instance_id):
    return POLL.until(
        f"host {instance_id}",
        lambda: Poll(
            control.host_of(layout, instance_id) is not None,
            "booting",
            control.host_of(layout, instance_id),
        ),
        10,
    )


def bake_by_hand(aws, layout, version, broken=False, errors=False):
    """What the bake does, without Ansible: install the app on a builder, then image it."""
    ec2 = aws.client("ec2")
    builder = ec2.run_instances(ImageId=BASE_AMI, MinCount=1, MaxCount=1)["Instances"][0]
    root = control.host_of(layout, builder["InstanceId"]) or wait_host(
        layout, builder["InstanceId"]
    )
    app = f"{root['root']}/opt/app/current"
    shutil.copytree(REPO / "examples" / "hello", app)
    if broken:
        open(f"{app}/BROKEN", "w").close()
    if errors:  # `/` answers 500 while the health check passes
        open(f"{app}/ERRORS", "w").close()
    env = f"{root['root']}/etc/deployer"
    subprocess.run(["mkdir", "-p", env], check=True)
    with open(f"{env}/app.env", "w") as handle:
        handle.write(f"VERSION={version}\nPORT=8080\nAPP_DIR=/opt/app/current\n")
    time.sleep(1.1)  # as on AWS, a new instance id may not be known everywhere for a moment
    image = ec2.create_image(InstanceId=builder["InstanceId"], Name=f"hello-{version}")["ImageId"]
    ec2.terminate_instances(InstanceIds=[builder["InstanceId"]])
    POLL.until(f"{image} available", lambda: Poll(image_state(ec2, image) == "available", ""), 30)
    return image


def image_state(ec2, image):
    try:
        return ec2.describe_images(ImageIds=[image])["Images"][0]["State"]
    except ClientError:  # not visible yet: EC2 is eventually consistent
        return "unknown"


def instance_states(ec2, ids):
    try:
        reservations = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    except ClientError:
        return ["unknown"]
    return [i["State"]["Name"] for r in reservations for i in r["Instances"]]


def fleet_behind_target_group(aws, image, vpc, subnet, count=2):
    ec2, elb = aws.client("ec2"), aws.client("elbv2")
    group = elb.create_target_group(
        Name=f"tg-{image[-8:]}",
        Protocol="HTTP",
        Port=8080,
        VpcId=vpc,
        HealthCheckPath="/healthz",
        HealthCheckIntervalSeconds=5,
        HealthCheckTimeoutSeconds=2,
        HealthyThresholdCount=2,
        UnhealthyThresholdCount=2,
    )["TargetGroups"][0]["TargetGroupArn"]
    ids = [
        i["InstanceId"]
        for i in ec2.run_instances(ImageId=image, MinCount=count, MaxCount=count, SubnetId=subnet)[
            "Instances"
        ]
    ]
    # As on AWS, only a running instance can be registered.
    POLL.until("running", lambda: Poll(set(instance_states(ec2, ids)) == {"running"}, ""), 30)
    elb.register_targets(TargetGroupArn=group, Targets=[{"Id": i} for i in ids])
    return group, ids


def states(aws, group):
    described = aws.client("elbv2").describe_target_health(TargetGroupArn=group)
    return sorted(d["TargetHealth"]["State"] for d in described["TargetHealthDescriptions"])


def wait_states(aws, group, wanted, deadline=15):
    return POLL.until(
        f"{wanted}", lambda: Poll(states(aws, group) == wanted, str(states(aws, group))), deadline
    )


@pytest.fixture(scope="module")
def network(sandbox):
    """One VPC for the module: the sandbox, as AWS, allows 5 per Region."""
    from deployer.aws.session import make_context
    from deployer.sandbox.layout import CREDENTIALS

    _, state = sandbox
    aws = make_context(state.region, endpoint_url=state.endpoint, credentials=CREDENTIALS)
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{n}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for n, z in ((1, "a"), (2, "b"))
    ]
    return vpc, subnets


def test_target_health_comes_from_real_probes(sandbox, sandbox_aws, network):
    layout, _ = sandbox
    good = bake_by_hand(sandbox_aws, layout, "v-good")
    bad = bake_by_hand(sandbox_aws, layout, "v-bad", broken=True)
    good_group, _ = fleet_behind_target_group(sandbox_aws, good, network[0], network[1][0])
    bad_group, _ = fleet_behind_target_group(sandbox_aws, bad, network[0], network[1][0])
    # moto alone says "healthy" at once for both; the sandbox starts at "initial".
    assert states(sandbox_aws, bad_group) != ["healthy", "healthy"]
    wait_states(sandbox_aws, good_group, ["healthy", "healthy"])
    wait_states(sandbox_aws, bad_group, ["unhealthy", "unhealthy"])
    reason = sandbox_aws.client("elbv2").describe_target_health(TargetGroupArn=bad_group)[
        "TargetHealthDescriptions"
    ][0]["TargetHealth"]["Reason"]
    assert reason == "Target.ResponseCodeMismatch"


def test_a_target_that_stops_answering_turns_unhealthy(sandbox, sandbox_aws, network):
    layout, _ = sandbox
    image = bake_by_hand(sandbox_aws, layout, "v-flaky")
    group, ids = fleet_behind_target_group(sandbox_aws, image, network[0], network[1][0], count=1)
    wait_states(sandbox_aws, group, ["healthy"])
    root = control.host_of(layout, ids[0])["root"]
    open(f"{root}/opt/app/current/BROKEN", "w").close()
    wait_states(sandbox_aws, group, ["unhealthy"])


def test_the_load_balancer_front_forwards_by_listener_weights(sandbox, sandbox_aws, network):
    layout, _ = sandbox
    elb = sandbox_aws.client("elbv2")
    blue = bake_by_hand(sandbox_aws, layout, "blue")
    green = bake_by_hand(sandbox_aws, layout, "green")
    blue_group, _ = fleet_behind_target_group(sandbox_aws, blue, network[0], network[1][0])
    green_group, _ = fleet_behind_target_group(sandbox_aws, green, network[0], network[1][0])
    lb = elb.create_load_balancer(Name="front-test", Subnets=network[1])["LoadBalancers"][0]
    listener = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": blue_group}],
    )["Listeners"][0]
    wait_states(sandbox_aws, blue_group, ["healthy", "healthy"])
    wait_states(sandbox_aws, green_group, ["healthy", "healthy"])
    url = POLL.until(
        "front",
        lambda: Poll(
            control.front_url(layout, lb["DNSName"], 80) is not None,
            "starting",
            control.front_url(layout, lb["DNSName"], 80),
        ),
        10,
    )

    def served(n=20):
        return {urllib.request.urlopen(url, timeout=5).read().decode().strip() for _ in range(n)}

    assert served() == {"hello from blue"}

    def weigh(blue_weight, green_weight):
        elb.modify_listener(
            ListenerArn=listener["ListenerArn"],
            DefaultActions=[forward_action({blue_group: blue_weight, green_group: green_weight})],
        )

    weigh(0, 100)
    assert served() == {"hello from green"}
    weigh(50, 50)
    assert served(60) == {"hello from blue", "hello from green"}


def test_terminating_an_instance_stops_its_process(sandbox, sandbox_aws, network):
    layout, _ = sandbox
    image = bake_by_hand(sandbox_aws, layout, "v-term")
    _, ids = fleet_behind_target_group(sandbox_aws, image, network[0], network[1][0], count=1)
    host = wait_host(layout, ids[0])
    pid = int(
        POLL.until(
            "pid",
            lambda: Poll(
                (layout.host_dir(ids[0]) / "app.pid").exists(),
                "no pid",
                (layout.host_dir(ids[0]) / "app.pid").read_text()
                if (layout.host_dir(ids[0]) / "app.pid").exists()
                else None,
            ),
            5,
        )
    )
    assert host["root"]
    sandbox_aws.client("ec2").terminate_instances(InstanceIds=ids)
    POLL.until("process gone", lambda: Poll(not _alive(pid), "alive"), 10)
    POLL.until("host dir removed", lambda: Poll(not layout.host_dir(ids[0]).exists(), "there"), 10)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_down_stops_every_process_it_started(tmp_path):
    layout = Layout.for_workdir(tmp_path)
    state, started = control.up(layout)
    assert started
    again, started_again = control.up(layout)
    assert not started_again and again.endpoint == state.endpoint
    assert control.down(layout)
    time.sleep(0.2)
    assert not _alive(state.pid)
    assert control.status(layout) is None
    assert not control.down(layout)


def test_a_host_never_shares_an_address_with_another_sandboxs_app(tmp_path):
    """Two sandboxes on one machine: an address already served is skipped, not probed."""
    from deployer.sandbox.hosts import HostManager

    hosts = HostManager(Layout.for_workdir(tmp_path))
    taken = f"127.{hosts._net}.0.2"
    with socket.socket() as squatter:
        squatter.bind((taken, 8080))
        squatter.listen()
        ip, _ = hosts._allocate(8080)
    assert ip != taken


def test_with_a_certificate_the_sandbox_serves_443_and_port_80_redirects_to_it(
    sandbox, sandbox_aws, network
):
    """The service stack with a certificate imported into the sandbox's ACM: production is
    HTTPS on 443, and port 80 answers a 301 to it over HTTP, as the ALB's redirect does.
    """
    from deployer.aws.cloudformation import CloudFormation
    from deployer.infra.stacks import Templates, ensure_stack
    from tests.integration.test_stacks_on_moto_server import self_signed_certificate

    layout, _ = sandbox
    cert, key = self_signed_certificate()
    acm = sandbox_aws.client("acm")
    arn = acm.import_certificate(Certificate=cert, PrivateKey=key)["CertificateArn"]
    service = ensure_stack(
        CloudFormation(sandbox_aws, POLL),
        "tls-service",
        Templates.load(REPO / "cloudformation")["service"],
        {
            "VpcId": network[0],
            "SubnetIds": ",".join(network[1]),
            "CertificateArn": arn,
            "OwnLoadBalancerSecurityGroupId": "",
            "TestListenerCidr": "127.0.0.1/32",
        },
        {"deployer:app": "tls"},
        lambda _line: None,
    )
    assert service.outputs["ListenerPort"] == "443"
    dns = service.outputs["LoadBalancerDns"]
    url = POLL.until(
        "front",
        lambda: Poll(
            control.front_url(layout, dns, 80) is not None,
            "starting",
            control.front_url(layout, dns, 80),
        ),
        10,
    )

    class NoFollow(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    request = urllib.request.Request(url + "orders?page=2", headers={"Host": "shop.example"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.build_opener(NoFollow).open(request, timeout=5)
    assert answer.value.code == 301
    assert answer.value.headers["Location"] == "https://shop.example/orders?page=2"
    assert control.front_url(layout, dns, 443) is not None
