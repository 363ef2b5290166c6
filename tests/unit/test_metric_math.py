"""The sandbox evaluates the fleet's metric math alarms as CloudWatch does: a 5xx count
breaches only when it is also a share of the minute's requests, a minute without a 5xx
datapoint counts as none (FILL), and a minute without requests is missing.
"""

import json
from types import SimpleNamespace

import pytest
from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat

from deployer.sandbox.cloudwatch_clock import Clock, MetricStore, evaluate_alarm, reason_data
from deployer.sandbox.metric_math import evaluate
from tests.cfn import load_template
from tests.conftest import REPO

RULE = "IF(FILL(errors, 0) >= 5 AND 100 * FILL(errors, 0) / requests >= 5, 1, 0)"


@pytest.mark.parametrize(
    ("errors", "requests", "expected"),
    [
        (12, 12000, 0.0),  # a busy service's usual 0.1 %: not a failure
        (6, 100, 1.0),  # 6 %, and at least 5
        (4, 10, 0.0),  # 40 %, but fewer than 5
        (None, 500, 0.0),  # no 5xx datapoint: none
        (3, None, None),  # no requests published: missing
    ],
)
def test_the_fleet_alarm_expression_needs_the_count_and_the_share(errors, requests, expected):
    assert evaluate(RULE, {"errors": errors, "requests": requests}) == expected


def test_operators_and_functions_as_cloudwatch_reads_them():
    values = {"a": 2.0, "b": 0.0, "m": None}
    assert evaluate("a + 3 * 2 - -1", values) == 9.0
    assert evaluate("(a + 3) * 2 / 4", values) == 2.5
    assert evaluate("a / b", values) is None  # a datapoint divided by zero is dropped
    assert evaluate("a > 1 && !b || m", values) is None  # missing spreads
    assert evaluate("a > 1 AND NOT b", values) == 1.0
    assert evaluate("IF(a < 1, 5)", values) is None  # no false value: missing
    assert evaluate("IF(a == 2, 5, 6)", values) == 5.0
    assert evaluate("FILL(m, 7) + 1", values) == 8.0
    for broken in ("a +", "SUM(a)", "c * 2", "a $ b"):
        with pytest.raises(ValueError):
            evaluate(broken, values)


def query(query_id, metric=None, expression=None, returned="false"):
    stat = None
    if metric:
        dimensions = [Dimension("TargetGroup", "targetgroup/g/1")]
        stat = MetricStat(Metric(metric, "AWS/ApplicationELB", dimensions), "60", "Sum", "")
    return MetricDataQuery(query_id, "", "", returned, expression=expression, metric_stat=stat)


def test_a_metric_math_alarm_is_judged_on_its_returned_expression():
    now = {"at": 0.0}
    store = MetricStore(Clock(1.0, 60.0), lambda: now["at"])
    key = (("TargetGroup", "targetgroup/g/1"),)
    for second in range(60):  # minute 100: 600 requests, 12 of them 5xx (2 %)
        for _ in range(10):
            store.add("RequestCount", key, 1.0, 6000.0 + second)
        if second % 5 == 0:
            store.add("HTTPCode_Target_5XX_Count", key, 1.0, 6000.0 + second)
    alarm = SimpleNamespace(
        metric_data_queries=[
            query("errors", "HTTPCode_Target_5XX_Count"),
            query("requests", "RequestCount"),
            query("breach", expression=RULE, returned="true"),
        ],
        period=None,
        statistic=None,
        extended_statistic=None,
        evaluation_periods=1,
        datapoints_to_alarm=None,
        comparison_operator="GreaterThanOrEqualToThreshold",
        threshold=1.0,
        treat_missing_data="notBreaching",
    )
    now["at"] = 6060.0 + 60.0 + 1.0
    for percent, state in (("5", "OK"), ("2", "ALARM")):
        alarm.metric_data_queries[2].expression = RULE.replace(">= 5, 1", f">= {percent}, 1")
        verdict = evaluate_alarm(alarm, store, now["at"])
        assert verdict.state == state, verdict.reason
        # What the sandbox writes beside the state (a math alarm has no period of its own).
        assert json.loads(reason_data(verdict, alarm))["period"] == 60


def test_the_fleet_template_alarms_use_the_expression_the_sandbox_evaluates():
    fleet = load_template(REPO / "cloudformation" / "fleet.yaml")["Resources"]
    alarms = (
        ("Target5xxAlarm", "Alarm5xxCount"),
        ("ConnectionErrorsAlarm", "AlarmConnectionErrorCount"),
    )
    for name, count in alarms:
        metrics = fleet[name]["Properties"]["Metrics"]
        (returned,) = [m for m in metrics if m.get("ReturnData", True)]
        expression = returned["Expression"]
        assert f"${{{count}}}" in expression and "${AlarmErrorPercent}" in expression
        ids = {m["Id"] for m in metrics if "MetricStat" in m}
        filled = expression.replace(f"${{{count}}}", "5").replace("${AlarmErrorPercent}", "5")
        values = dict.fromkeys(ids, 1.0)
        assert evaluate(filled, values) in (0.0, 1.0)


def test_a_template_metric_math_alarm_is_described_as_aws_describes_it():
    """DescribeAlarms answered 500 once: the alarm's queries must have moto's own shapes."""
    import boto3
    from moto import mock_aws

    from deployer.aws.cloudwatch import CloudWatch
    from deployer.aws.session import AwsContext
    from deployer.sandbox.alarms import TemplateAlarm
    from deployer.sandbox.layout import ACCOUNT_ID, REGION

    fleet = load_template(REPO / "cloudformation" / "fleet.yaml")["Resources"]
    props = dict(fleet["Target5xxAlarm"]["Properties"])
    props["Metrics"] = [
        {**m, "Expression": RULE} if "Expression" in m else m for m in props["Metrics"]
    ]
    props.pop("AlarmDescription")
    with mock_aws():
        TemplateAlarm.create_from_cloudformation_json(
            "shop-prod-fleet-Target5xxAlarm-X", {"Properties": props}, ACCOUNT_ID, REGION
        )
        session = boto3.Session(
            aws_access_key_id="x", aws_secret_access_key="x", region_name=REGION
        )
        states = CloudWatch(AwsContext(session=session)).alarm_states(
            ["shop-prod-fleet-Target5xxAlarm-X"]
        )
    (state,) = states.values()
    assert state.state == "INSUFFICIENT_DATA" and state.window_s == 60.0
