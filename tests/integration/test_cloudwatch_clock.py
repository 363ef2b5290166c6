"""The sandbox's CloudWatch keeps AWS's clock: a load balancer's metrics land in minute
periods, readable only a publication delay after the minute closed, never counting health
checks; alarms judge complete periods once a minute. So an alarm cannot see an error before
AWS could, and a gate tested here is tested on the timing it will meet.

(The sandbox runs at 1/50 of AWS's timing: a minute lasts 1.2 s, the delay 1.2 s.) This
module's sandbox publishes every period after the same delay, so that a test can say when a
minute becomes readable; the `aws` profile's spread of delays and late samples are proven on
the store itself (tests/unit/test_metric_publication.py).
"""

import contextlib
import json
import math
import os
import signal
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from deployer.aws.poller import Poll
from deployer.aws.session import make_context
from deployer.sandbox import control
from deployer.sandbox.layout import CREDENTIALS as SANDBOX_CREDENTIALS
from tests.integration.test_sandbox import (
    POLL,
    bake_by_hand,
    fleet_behind_target_group,
    wait_states,
)

pytestmark = pytest.mark.integration
DELAY_S = 60.0  # the aws profile's publication delay, modelled seconds
SANDBOX_BEHAVIOURS = {"metric_publication_spread_s": 0.0, "metric_late_fraction": 0.0}


def alarm_template(load_balancer: str, target_group: str) -> str:
    return json.dumps(
        {
            "Resources": {
                "Errors": {
                    "Type": "AWS::CloudWatch::Alarm",
                    "Properties": {
                        "Namespace": "AWS/ApplicationELB",
                        "MetricName": "HTTPCode_Target_5XX_Count",
                        "Dimensions": [
                            {"Name": "LoadBalancer", "Value": load_balancer},
                            {"Name": "TargetGroup", "Value": target_group},
                        ],
                        "Statistic": "Sum",
                        "Period": 60,
                        "EvaluationPeriods": 1,
                        "Threshold": 0,
                        "ComparisonOperator": "GreaterThanThreshold",
                        "TreatMissingData": "notBreaching",
                    },
                }
            }
        }
    )


@pytest.fixture(scope="module")
def errors_behind_a_load_balancer(sandbox, tmp_path_factory):
    """A fleet whose `/` answers 500 (its health check passes), behind a load balancer, with
    a template-made alarm on its 5xx count.
    """
    layout, state = sandbox
    aws = make_context(state.region, endpoint_url=state.endpoint, credentials=SANDBOX_CREDENTIALS)
    ec2, elb, cfn = aws.client("ec2"), aws.client("elbv2"), aws.client("cloudformation")
    vpc = ec2.create_vpc(CidrBlock="10.19.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.19.{n}.0/24", AvailabilityZone=f"us-east-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for n, z in ((1, "a"), (2, "b"))
    ]
    image = bake_by_hand(aws, layout, "errors", errors=True)
    group, _ = fleet_behind_target_group(aws, image, vpc, subnets[0], count=1)
    balancer = elb.create_load_balancer(Name="clock-test", Subnets=subnets)["LoadBalancers"][0]
    elb.create_listener(
        LoadBalancerArn=balancer["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group}],
    )
    wait_states(aws, group, ["healthy"])
    url = POLL.until(
        "front",
        lambda: Poll(
            control.front_url(layout, balancer["DNSName"], 80) is not None,
            "starting",
            control.front_url(layout, balancer["DNSName"], 80),
        ),
        10,
    )
    lb_dimension = balancer["LoadBalancerArn"].split(":loadbalancer/", 1)[1]
    tg_dimension = group.rsplit(":", 1)[1]
    cfn.create_stack(
        StackName="clock-alarm", TemplateBody=alarm_template(lb_dimension, tg_dimension)
    )
    POLL.until(
        "the alarm stack",
        lambda: Poll(
            cfn.describe_stacks(StackName="clock-alarm")["Stacks"][0]["StackStatus"]
            == "CREATE_COMPLETE",
            "creating",
        ),
        30,
    )
    alarm = cfn.describe_stack_resources(StackName="clock-alarm")["StackResources"][0][
        "PhysicalResourceId"
    ]
    return (
        aws,
        url,
        alarm,
        [
            {"Name": "LoadBalancer", "Value": lb_dimension},
            {"Name": "TargetGroup", "Value": tg_dimension},
        ],
        state.cloudwatch_time_scale,
    )


def request(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def start_of_next_minute(scale: float) -> float:
    """Sleep until just after a (scaled) minute begins; return when it began."""
    minute = 60 * scale
    begins = (math.floor(time.time() / minute) + 1) * minute
    time.sleep(max(0.0, begins - time.time()) + 0.02)
    return begins


def error_points(aws, dimensions, stat="Sum", metric="HTTPCode_Target_5XX_Count"):
    now = datetime.now(UTC)
    answer = aws.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/ApplicationELB",
                        "MetricName": metric,
                        "Dimensions": dimensions,
                    },
                    "Period": 60,
                    "Stat": stat,
                },
            }
        ],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(seconds=1),
    )["MetricDataResults"][0]
    return list(zip(answer["Timestamps"], answer["Values"], strict=True))


def test_an_alarm_sees_errors_only_after_their_minute_closed_and_was_published(
    errors_behind_a_load_balancer,
):
    aws, url, alarm, dimensions, scale = errors_behind_a_load_balancer
    cloudwatch = aws.client("cloudwatch")
    begins = start_of_next_minute(scale)
    statuses = [request(url) for _ in range(5)]
    assert statuses == [500] * 5
    readable_from = begins + 60 * scale + DELAY_S * scale  # the minute closed, then published

    seen: list[tuple[float, str, int]] = []
    deadline = readable_from + 3 * 60 * scale
    while time.time() < deadline:
        state = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"][0]["StateValue"]
        seen.append((time.time(), state, len(error_points(aws, dimensions))))
        if state == "ALARM":
            break
        time.sleep(0.05)
    early = [(t, s, n) for t, s, n in seen if t < readable_from - 0.05]
    assert early, "the test polled too late to see the minute before publication"
    assert all(s != "ALARM" and n == 0 for _, s, n in early), early  # nothing visible yet
    assert seen[-1][1] == "ALARM", seen[-3:]  # and then, within a minute of evaluation
    assert error_points(aws, dimensions)[-1][1] == 5.0


def test_readers_see_the_same_published_periods_and_never_health_checks(
    errors_behind_a_load_balancer,
):
    aws, url, _, dimensions, scale = errors_behind_a_load_balancer
    quiet = start_of_next_minute(scale)  # health checks go on all along; no user requests
    time.sleep(60 * scale * 2 + DELAY_S * scale)
    counts = error_points(aws, dimensions, metric="RequestCount")
    assert all(when.timestamp() < quiet - 1e-6 for when, _ in counts), counts

    begins = start_of_next_minute(scale)
    for _ in range(4):
        request(url)
    time.sleep(60 * scale + DELAY_S * scale + 0.1)
    counts = dict(error_points(aws, dimensions, metric="RequestCount"))
    newest = max(counts)
    assert abs(newest.timestamp() - begins) < 1.0 and counts[newest] == 4.0
    p99 = dict(error_points(aws, dimensions, stat="p99", metric="TargetResponseTime"))
    statistics = aws.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/ApplicationELB",
        MetricName="TargetResponseTime",
        Dimensions=dimensions,
        StartTime=datetime.now(UTC) - timedelta(minutes=10),
        EndTime=datetime.now(UTC),
        Period=60,
        ExtendedStatistics=["p99"],
    )["Datapoints"]
    by_time = {d["Timestamp"]: d["ExtendedStatistics"]["p99"] for d in statistics}
    assert by_time[newest] == pytest.approx(p99[newest])


def test_a_target_refusing_connections_gives_users_the_balancers_502_counted_as_aws_counts_it(
    errors_behind_a_load_balancer, sandbox
):
    """Last in this module: it stops the fleet's app. Users get the load balancer's own 502;
    the group's TargetConnectionErrorCount counts it, and the balancer's (only) 5xx; the
    targets' 5xx count does not, as on AWS.
    """
    aws, url, _, dimensions, scale = errors_behind_a_load_balancer
    layout, _ = sandbox
    for pid_file in layout.hosts.glob("*/app.pid"):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid_file.read_text()), signal.SIGKILL)
    begins = start_of_next_minute(scale)
    assert [request(url) for _ in range(3)] == [502] * 3
    time.sleep(60 * scale + DELAY_S * scale + 0.2)

    def newest(metric, dims):
        points = [
            (w, v)
            for w, v in error_points(aws, dims, metric=metric)
            if w.timestamp() >= begins - 1e-6
        ]
        return sum(v for _, v in points)

    balancer_only = [d for d in dimensions if d["Name"] == "LoadBalancer"]
    assert newest("TargetConnectionErrorCount", dimensions) == 3
    assert newest("HTTPCode_ELB_5XX_Count", balancer_only) == 3
    assert newest("HTTPCode_ELB_5XX_Count", dimensions) == 0  # no TargetGroup dimension
    assert newest("HTTPCode_Target_5XX_Count", dimensions) == 0  # no target answered
    assert newest("RequestCount", dimensions) == 3  # a target was chosen: counted
