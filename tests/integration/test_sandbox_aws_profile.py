"""The sandbox's `aws` profile fails where AWS would. Each test here fails on plain moto (which
ignores signatures and tokens, is never eventually consistent, makes everything at once and
never throttles), so a moto upgrade cannot quietly take a behaviour away.

Everything goes through plain boto3 against the sandbox endpoint, as a user would.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from deployer.aws.poller import Poll, Poller
from deployer.sandbox import client, control, latency
from deployer.sandbox.layout import CREDENTIALS, Layout
from tests.conftest import REPO

pytestmark = pytest.mark.integration
SCALE = 0.05
BASE_AMI = "ami-0d27e0fb3bac4d724"
POLL = Poller(first_interval=0.05, max_interval=0.25)
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("DEPLOYER_SANDBOX_TIME_SCALE", str(SCALE))
    layout = Layout.for_workdir(tmp_path_factory.mktemp("aws-profile"))
    state, _ = control.up(layout, "aws")
    assert client.sandbox_status(state.endpoint)["profile"] == "aws"
    yield state.endpoint
    control.down(layout)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture
def aws(endpoint):
    """A client factory; each test starts from the profile's own behaviours."""
    client.set_behaviours(
        endpoint,
        stack_failures={},
        throttle_fraction={},
        error_fraction={},
        rate_limits={},
    )

    def make(service, config=None):
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=endpoint,
            config=config,
            **CREDENTIALS,
        )

    return make


def code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def launch(ec2, **extra):
    return ec2.run_instances(ImageId=BASE_AMI, MinCount=1, MaxCount=1, **extra)["Instances"][0]


# ---- S3 signatures -----------------------------------------------------------------------------


def test_s3_refuses_sigv2_and_expired_urls_and_serves_sigv4(aws):
    v4 = aws("s3", Config(signature_version="s3v4"))
    v4.create_bucket(Bucket="artifacts-sig")
    v4.put_object(Bucket="artifacts-sig", Key="app.tar.gz", Body=b"payload")
    signed_v2 = aws("s3", Config(signature_version="s3")).generate_presigned_url(
        "get_object", Params={"Bucket": "artifacts-sig", "Key": "app.tar.gz"}, ExpiresIn=60
    )
    assert "Signature=" in signed_v2 and "X-Amz-Algorithm" not in signed_v2
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(signed_v2)
    assert refused.value.code == 403 and b"AccessDenied" in refused.value.read()

    signed_v4 = v4.generate_presigned_url(
        "get_object", Params={"Bucket": "artifacts-sig", "Key": "app.tar.gz"}, ExpiresIn=60
    )
    assert urllib.request.urlopen(signed_v4).read() == b"payload"

    expired = v4.generate_presigned_url(
        "get_object", Params={"Bucket": "artifacts-sig", "Key": "app.tar.gz"}, ExpiresIn=1
    )
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as late:
        urllib.request.urlopen(expired)
    assert late.value.code == 403 and b"Request has expired" in late.value.read()

    unsigned = signed_v4.split("?")[0]
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        urllib.request.urlopen(unsigned)
    assert anonymous.value.code == 403


def test_sigv2_api_calls_are_refused_too(aws):
    with pytest.raises(ClientError) as refused:
        aws("s3", Config(signature_version="s3")).list_buckets()
    assert code(refused) == "AccessDenied"


# ---- client tokens -----------------------------------------------------------------------------


def test_run_instances_with_one_token_makes_one_instance_even_after_it_terminated(aws):
    ec2 = aws("ec2")
    first = launch(ec2, ClientToken="builder-token-1")["InstanceId"]
    again = launch(ec2, ClientToken="builder-token-1")["InstanceId"]
    assert again == first
    time.sleep(1.1)  # out of the consistency window
    ec2.terminate_instances(InstanceIds=[first])
    after = launch(ec2, ClientToken="builder-token-1")["InstanceId"]
    assert after == first  # the terminated one: a reused token never makes a new builder
    with pytest.raises(ClientError) as mismatch:
        launch(ec2, ClientToken="builder-token-1", InstanceType="t3.large")
    assert code(mismatch) == "IdempotentParameterMismatch"


def test_create_stack_with_one_token_makes_one_stack(aws):
    cfn = aws("cloudformation")
    body = (REPO / "cloudformation" / "network.yaml").read_text()
    first = cfn.create_stack(StackName="tok-net", TemplateBody=body, ClientRequestToken="t-1")
    again = cfn.create_stack(StackName="tok-net", TemplateBody=body, ClientRequestToken="t-1")
    assert again["StackId"] == first["StackId"]
    with pytest.raises(ClientError) as reused:
        cfn.create_stack(
            StackName="tok-net-2", TemplateBody=body, ClientRequestToken="t-1", OnFailure="DELETE"
        )
    assert code(reused) == "TokenAlreadyExistsException"


# ---- eventual consistency ----------------------------------------------------------------------


def test_a_new_instance_id_is_not_found_for_a_moment(aws):
    ec2 = aws("ec2", NO_RETRIES)
    instance = launch(ec2)["InstanceId"]
    for call in (
        lambda: ec2.describe_instances(InstanceIds=[instance]),
        lambda: ec2.create_tags(Resources=[instance], Tags=[{"Key": "a", "Value": "b"}]),
        lambda: ec2.terminate_instances(InstanceIds=[instance]),
    ):
        with pytest.raises(ClientError) as missing:
            call()
        assert code(missing) == "InvalidInstanceID.NotFound"
    time.sleep(1.1)
    found = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    assert found["InstanceId"] == instance


def test_a_new_security_group_is_not_found_for_a_moment(aws):
    ec2 = aws("ec2", NO_RETRIES)
    vpc = ec2.create_vpc(CidrBlock="10.31.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="fresh", Description="x", VpcId=vpc)["GroupId"]
    with pytest.raises(ClientError) as missing:
        ec2.describe_security_groups(GroupIds=[group])
    assert code(missing) == "InvalidGroup.NotFound"


# ---- resources take AWS's time -----------------------------------------------------------------


def test_an_instance_is_pending_before_it_runs(aws):
    ec2 = aws("ec2")
    instance = launch(ec2)
    assert instance["State"]["Name"] == "pending"
    time.sleep(1.1)

    def state():
        reservations = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])
        return reservations["Reservations"][0]["Instances"][0]["State"]["Name"]

    POLL.until("running", lambda: Poll(state() == "running", state()), 10)


def test_a_new_image_is_pending_for_its_modelled_time(aws, endpoint):
    ec2 = aws("ec2")
    instance = launch(ec2)["InstanceId"]
    time.sleep(1.1)
    started = time.time()
    image = ec2.create_image(InstanceId=instance, Name="modelled-image")["ImageId"]
    time.sleep(1.1)
    assert ec2.describe_images(ImageIds=[image])["Images"][0]["State"] == "pending"

    def state():
        return ec2.describe_images(ImageIds=[image])["Images"][0]["State"]

    POLL.until("available", lambda: Poll(state() == "available", state()), 60)
    took = time.time() - started
    modelled = latency.image_seconds(latency.DEFAULT_ROOT_GIB) * SCALE
    assert modelled * 0.9 <= took <= modelled + 3
    spans = [s for s in client.timeline(endpoint, started) if s["id"] == image]
    assert spans and spans[0]["kind"] == "image-pending"


def test_a_stack_is_in_progress_while_its_resources_are_made_one_event_each(aws):
    cfn = aws("cloudformation")
    body = (REPO / "cloudformation" / "network.yaml").read_text()
    stack_id = cfn.create_stack(StackName="timed-net", TemplateBody=body)["StackId"]
    assert cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == (
        "CREATE_IN_PROGRESS"
    )

    def status():
        return cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]

    POLL.until("complete", lambda: Poll(status() == "CREATE_COMPLETE", status()), 60)
    events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    completed = {e["LogicalResourceId"] for e in events if e["ResourceStatus"] == "CREATE_COMPLETE"}
    assert {"Vpc", "SubnetA", "SubnetB", "DefaultRoute"} <= completed
    cfn.delete_stack(StackName=stack_id)
    assert status() == "DELETE_IN_PROGRESS"
    POLL.until("deleted", lambda: Poll(status() == "DELETE_COMPLETE", status()), 60)


def test_a_failed_create_deletes_itself_and_its_reason_stays_readable_by_id(aws, endpoint):
    client.set_behaviours(endpoint, stack_failures={"RouteTable": "Route table limit exceeded"})
    cfn = aws("cloudformation")
    body = (REPO / "cloudformation" / "network.yaml").read_text()
    params = [{"ParameterKey": "CidrPrefix", "ParameterValue": "10.44"}]
    stack_id = cfn.create_stack(
        StackName="doomed-net", TemplateBody=body, Parameters=params, OnFailure="DELETE"
    )["StackId"]

    def by_name():
        try:
            return cfn.describe_stacks(StackName="doomed-net")["Stacks"][0]["StackStatus"]
        except ClientError as exc:
            return exc.response["Error"]["Message"]

    POLL.until("gone by name", lambda: Poll("does not exist" in by_name(), by_name()), 60)
    assert cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"] == (
        "DELETE_COMPLETE"
    )
    events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    failed = [e for e in events if e["LogicalResourceId"] == "RouteTable"]
    assert failed[0]["ResourceStatus"] == "CREATE_FAILED"
    assert failed[0]["ResourceStatusReason"] == "Route table limit exceeded"
    statuses = [e["ResourceStatus"] for e in events if e["LogicalResourceId"] == "doomed-net"]
    assert statuses[:3] == ["DELETE_COMPLETE", "DELETE_IN_PROGRESS", "CREATE_FAILED"]

    rolled = cfn.create_stack(StackName="rolled-net", TemplateBody=body, Parameters=params)
    POLL.until(
        "rolled back",
        lambda: Poll(
            cfn.describe_stacks(StackName=rolled["StackId"])["Stacks"][0]["StackStatus"]
            == "ROLLBACK_COMPLETE",
            "",
        ),
        60,
    )


def test_an_auto_scaling_group_registers_instances_once_they_run(aws):
    ec2, asg, elb = aws("ec2"), aws("autoscaling"), aws("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.32.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.32.1.0/24")["Subnet"]["SubnetId"]
    group = elb.create_target_group(Name="asg-reg", Protocol="HTTP", Port=8080, VpcId=vpc)
    arn = group["TargetGroups"][0]["TargetGroupArn"]
    template = ec2.create_launch_template(
        LaunchTemplateName="asg-reg", LaunchTemplateData={"ImageId": BASE_AMI}
    )["LaunchTemplate"]["LaunchTemplateName"]
    time.sleep(1.1)
    asg.create_auto_scaling_group(
        AutoScalingGroupName="asg-reg",
        LaunchTemplate={"LaunchTemplateName": template},
        MinSize=1,
        MaxSize=1,
        DesiredCapacity=1,
        VPCZoneIdentifier=subnet,
        TargetGroupARNs=[arn],
    )
    group_now = asg.describe_auto_scaling_groups(AutoScalingGroupNames=["asg-reg"])
    assert group_now["AutoScalingGroups"][0]["Instances"][0]["LifecycleState"] == "Pending"
    assert elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"] == []

    def registered():
        return len(elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"])

    POLL.until("registered", lambda: Poll(registered() == 1, str(registered())), 10)


# ---- CloudWatch ----------------------------------------------------------------------------------


def test_describe_alarms_lists_composite_alarms_only_when_asked(aws):
    cloudwatch = aws("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName="p-5xx",
        MetricName="HTTPCode_Target_5XX_Count",
        Namespace="AWS/ApplicationELB",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.put_composite_alarm(AlarmName="p-any", AlarmRule='ALARM("p-5xx")')
    default = cloudwatch.describe_alarms(AlarmNames=["p-5xx", "p-any"])
    assert [a["AlarmName"] for a in default["MetricAlarms"]] == ["p-5xx"]
    assert default.get("CompositeAlarms", []) == []
    both = cloudwatch.describe_alarms(
        AlarmNames=["p-5xx", "p-any"], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
    )
    assert [a["AlarmName"] for a in both["CompositeAlarms"]] == ["p-any"]


# ---- throttling, server errors, outages ---------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "call", "expected", "status"),
    [
        ("ec2", lambda c: c.describe_vpcs(), "RequestLimitExceeded", 503),
        ("cloudformation", lambda c: c.describe_stacks(), "Throttling", 400),
        ("dynamodb", lambda c: c.list_tables(), "ThrottlingException", 400),
        ("s3", lambda c: c.list_buckets(), "SlowDown", 503),
    ],
)
def test_each_service_throttles_with_its_own_error(aws, endpoint, service, call, expected, status):
    client.set_behaviours(endpoint, throttle_fraction={service: 1.0})
    config = NO_RETRIES.merge(Config(signature_version="s3v4")) if service == "s3" else NO_RETRIES
    with pytest.raises(ClientError) as throttled:
        call(aws(service, config))
    assert code(throttled) == expected
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_a_token_bucket_throttles_a_burst_and_refills(aws, endpoint):
    client.set_behaviours(endpoint, rate_limits={"elbv2": [0.5, 3]})  # modelled: 10/s at 0.05
    elb = aws("elbv2", NO_RETRIES)
    answers = []
    for _ in range(6):
        try:
            elb.describe_load_balancers()
            answers.append("ok")
        except ClientError as exc:
            answers.append(exc.response["Error"]["Code"])
    assert answers[:3] == ["ok"] * 3 and "Throttling" in answers[3:]
    time.sleep(0.3)
    elb.describe_load_balancers()


def test_server_errors_come_as_500_or_503(aws, endpoint):
    client.set_behaviours(endpoint, error_fraction={"*": 1.0})
    with pytest.raises(ClientError) as failed:
        aws("elbv2", NO_RETRIES).describe_load_balancers()
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] in (500, 503)


def test_an_outage_refuses_connections_and_ends(aws, endpoint):
    port = urllib.parse.urlparse(endpoint).port
    client.outage(endpoint, seconds=2.0)
    time.sleep(0.8)  # the listener closes within its poll interval (0.5 s)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass
    with pytest.raises(EndpointConnectionError):
        aws("ec2", NO_RETRIES).describe_vpcs()
    POLL.until("back", lambda: Poll(_answers(aws), "refused"), 5)


def _answers(aws):
    try:
        aws("sts", NO_RETRIES).get_caller_identity()
        return True
    except Exception:  # noqa: BLE001 - still refused
        return False
