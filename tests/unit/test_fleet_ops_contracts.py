"""AWS's documented shapes for `deployer logs` and `deployer exec`, where the sandbox is not AWS
(botocore's Stubber; the request each call must carry is checked by the Stubber too):

- FilterLogEvents may answer a partly full or empty page with a nextToken: the search goes on
  until a page has none.
- ListCommandInvocations pages hold at most 50 invocations; the plugin's Output holds at most
  2,500 characters, the whole output is in CloudWatch Logs under SSM's stream names.
- SendCommand targets the fleet by tags, with AWS-RunShellScript, the rate controls, an
  execution timeout and the log group for the output.
- A failed green's last lines: one DescribeLogStreams, then one GetLogEvents read backwards per
  instance's app stream.
"""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
from botocore.stub import ANY, Stubber

from deployer.aws.logs import Logs
from deployer.aws.session import AwsContext
from deployer.aws.ssm import RunCommand
from deployer.release.green_logs import last_lines

GROUP = "/deployer/shop/prod"
CMD = "6f1cd2a4-80e1-43da-9acd-680c2fd33b57"


def context() -> AwsContext:
    session = boto3.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="eu-west-1"
    )
    return AwsContext(session=session)


def test_an_empty_page_with_a_token_does_not_end_the_search():
    aws = context()
    with Stubber(aws.client("logs")) as stub:
        asked = {"logGroupName": GROUP, "startTime": 1000, "logStreamNamePrefix": "v2/"}
        stub.add_response(
            "filter_log_events",
            {
                "events": [
                    {
                        "logStreamName": "v2/i-0aaaaaaa/app",
                        "timestamp": 1001,
                        "message": "one",
                        "eventId": "1",
                    }
                ],
                "nextToken": "t1",
            },
            asked,
        )
        stub.add_response(
            "filter_log_events", {"events": [], "nextToken": "t2"}, {**asked, "nextToken": "t1"}
        )
        stub.add_response(
            "filter_log_events",
            {
                "events": [
                    {
                        "logStreamName": "v2/i-0bbbbbbb/app",
                        "timestamp": 1002,
                        "message": "two",
                        "eventId": "2",
                    }
                ]
            },
            {**asked, "nextToken": "t2"},
        )
        events = list(Logs(aws).events(GROUP, "v2/", 1000))
        stub.assert_no_pending_responses()
    assert [(e.stream, e.message) for e in events] == [
        ("v2/i-0aaaaaaa/app", "one"),
        ("v2/i-0bbbbbbb/app", "two"),
    ]


def test_a_fleet_is_targeted_by_its_tags_with_the_shell_document_and_its_rate_controls():
    aws = context()
    with Stubber(aws.client("ssm")) as stub:
        stub.add_response(
            "send_command",
            {"Command": {"CommandId": CMD, "Status": "Pending"}},
            {
                "DocumentName": "AWS-RunShellScript",
                "Targets": [
                    {"Key": "tag:deployer:app", "Values": ["shop"]},
                    {"Key": "tag:deployer:environment", "Values": ["prod"]},
                    {"Key": "tag:aws:autoscaling:groupName", "Values": ["shop-prod-fleet-v2-asg"]},
                ],
                "Parameters": {"commands": ["uname -a"], "executionTimeout": ["600"]},
                "MaxConcurrency": "25%",
                "MaxErrors": "1",
                # 16 instances, 4 at a time: 4 batches of up to 600 s each may wait their turn
                "TimeoutSeconds": 4 * 600 + 60,
                "CloudWatchOutputConfig": {
                    "CloudWatchLogGroupName": GROUP,
                    "CloudWatchOutputEnabled": True,
                },
                "Comment": ANY,
            },
        )
        command_id = RunCommand(aws).send(
            "uname -a",
            {
                "deployer:app": "shop",
                "deployer:environment": "prod",
                "aws:autoscaling:groupName": "shop-prod-fleet-v2-asg",
            },
            "25%",
            "1",
            600,
            GROUP,
            "deployer exec by ana: uname -a",
            expected=16,
        )
    assert command_id == CMD


def invocation(instance: str, status: str, code: int, output: str) -> dict:
    return {
        "CommandId": CMD,
        "InstanceId": instance,
        "Status": status,
        "CommandPlugins": [
            {"Name": "aws:runShellScript", "Status": status, "ResponseCode": code, "Output": output}
        ],
    }


def test_invocations_are_read_page_by_page_and_long_output_points_to_the_log_group():
    aws = context()
    long_output = "x" * 2500  # Run Command's limit for the plugin's Output
    with Stubber(aws.client("ssm")) as stub:
        stub.add_response(
            "list_command_invocations",
            {
                "CommandInvocations": [
                    invocation(f"i-0{n:07d}", "Success", 0, "ok") for n in range(50)
                ],
                "NextToken": "p2",
            },
            {"CommandId": CMD, "Details": True},
        )
        stub.add_response(
            "list_command_invocations",
            {"CommandInvocations": [invocation("i-0fffffff", "Failed", 2, long_output)]},
            {"CommandId": CMD, "Details": True, "NextToken": "p2"},
        )
        results = RunCommand(aws).results(CMD)
        stub.assert_no_pending_responses()
    assert len(results) == 51
    last = results[-1]
    assert (last.status, last.exit_code, last.truncated) == ("Failed", 2, True)
    assert last.stdout_stream == f"{CMD}/i-0fffffff/aws-runShellScript/stdout"
    assert not results[0].truncated


def test_a_failed_greens_last_lines_are_one_call_per_instance_read_backwards():
    """Only green's streams: an A/A release's blue runs the same version, but its streams were
    created before the release started.
    """
    aws = context()
    since = int(datetime(2026, 11, 26, 12, tzinfo=UTC).timestamp() * 1000)
    with Stubber(aws.client("logs")) as stub:
        stub.add_response(
            "describe_log_streams",
            {
                "logStreams": [
                    {"logStreamName": "v1.3/i-0aaaaaaa/app", "creationTime": since + 9_000},
                    {"logStreamName": "v1.3/i-0aaaaaaa/configure", "creationTime": since + 8_000},
                    {"logStreamName": "v1.3/i-0bbbbbbb/app", "creationTime": since + 9_500},
                    {"logStreamName": "v1.3/i-0b1e0000/app", "creationTime": since - 60_000},
                ]
            },
            {"logGroupName": GROUP, "logStreamNamePrefix": "v1.3/"},
        )
        refused = "upstream db: connection refused"
        for instance, lines in (
            ("i-0aaaaaaa", ["boot", "KeyError: 'DATABASE_URL'", *[refused] * 20]),
            ("i-0bbbbbbb", []),
        ):
            events = {
                "events": [{"timestamp": since + i, "message": m} for i, m in enumerate(lines)]
            }
            stub.add_response(
                "get_log_events",
                events,
                {
                    "logGroupName": GROUP,
                    "logStreamName": f"v1.3/{instance}/app",
                    "startTime": since,
                    "limit": 100,
                    "startFromHead": False,
                },
            )
            if lines:  # its first error since boot, read from the stream's start
                stub.add_response(
                    "get_log_events",
                    {
                        "events": [
                            {"timestamp": since + i, "message": m} for i, m in enumerate(lines)
                        ]
                    },
                    {
                        "logGroupName": GROUP,
                        "logStreamName": f"v1.3/{instance}/app",
                        "startTime": since,
                        "limit": 500,
                        "startFromHead": True,
                    },
                )
        found = last_lines(Logs(aws), GROUP, "v1.3", since)
        stub.assert_no_pending_responses()
    assert dict(found.by_instance) == {
        "i-0aaaaaaa": ["boot", "KeyError: 'DATABASE_URL'", f"{refused} ×20"]
    }
    assert dict(found.first_errors) == {"i-0aaaaaaa": "KeyError: 'DATABASE_URL'"}


def test_follow_shows_each_line_once_though_it_asks_again_a_minute_back_and_ctrl_c_ends_it():
    from types import SimpleNamespace

    from deployer.ops.fleet_logs import FOLLOW_LOOKBACK_MS, LogQuery, follow

    aws = context()
    engine = SimpleNamespace(runtime=SimpleNamespace(aws=aws))
    query = LogQuery(GROUP, "v2", "live", "shop-prod-fleet-v2", "v2/", 1_000, "")
    now = [100_000]

    def event(n: int) -> dict:
        return {
            "logStreamName": "v2/i-0aaaaaaa/app",
            "timestamp": 50_000 + n,
            "message": f"line {n}",
            "eventId": str(n),
        }

    shown: list[str] = []
    asks = []

    def pause(_seconds: float) -> None:
        asks.append(now[0])
        now[0] += 2_000
        if len(asks) == 2:
            raise KeyboardInterrupt  # Ctrl-C

    with Stubber(aws.client("logs")) as stub:
        stub.add_response(
            "filter_log_events",
            {"events": [event(1), event(2)]},
            {"logGroupName": GROUP, "startTime": 1_000, "logStreamNamePrefix": "v2/"},
        )
        # the next ask starts a minute before the first one (lines arrive late): line 2 comes
        # again, and is shown once
        stub.add_response(
            "filter_log_events",
            {"events": [event(2), event(3)]},
            {
                "logGroupName": GROUP,
                "startTime": 100_000 - FOLLOW_LOOKBACK_MS,
                "logStreamNamePrefix": "v2/",
            },
        )
        count = follow(
            engine,
            query,
            lambda line: shown.append(line.message),
            sleep=pause,
            now_ms=lambda: now[0],
        )
    assert (count, shown) == (3, ["line 1", "line 2", "line 3"])


def test_following_live_follows_what_takes_traffic_as_a_canary_starts_and_ends(monkeypatch):
    """Started before a release: v1 alone, then v2 joins once it takes traffic (each line
    named by its version), and leaves when traffic goes back.
    """
    from types import SimpleNamespace

    from deployer.ops import fleet_logs
    from deployer.ops.fleet_logs import LogQuery, follow

    monkeypatch.setattr(fleet_logs, "SERVING_EVERY_S", 2.0)
    aws = context()
    said: list[str] = []
    engine = SimpleNamespace(runtime=SimpleNamespace(aws=aws), report=said.append)
    query = LogQuery(GROUP, "v1", "live", "shop-prod-fleet-v1", "v1/", 1_000, "")
    now = [100_000]
    serving = iter([["v1", "v2"], ["v1"]])

    def event(version: str, n: int) -> dict:
        return {
            "logStreamName": f"{version}/i-0{version[1]}aaaaaa/app",
            "timestamp": 99_000 + n,
            "message": f"{version} line {n}",
            "eventId": f"{version}-{n}",
        }

    asks: list[int] = []

    def pause(_seconds: float) -> None:
        asks.append(now[0])
        now[0] += 2_000
        if len(asks) == 3:
            raise KeyboardInterrupt

    def expect(prefix: str, events: list[dict], start: int) -> None:
        stub.add_response(
            "filter_log_events",
            {"events": events},
            {"logGroupName": GROUP, "startTime": start, "logStreamNamePrefix": prefix},
        )

    shown: list[str] = []
    with Stubber(aws.client("logs")) as stub:
        expect("v1/", [event("v1", 1)], 1_000)
        back = 102_000 - fleet_logs.FOLLOW_LOOKBACK_MS
        expect("v1/", [event("v1", 1), event("v1", 2)], 100_000 - fleet_logs.FOLLOW_LOOKBACK_MS)
        expect("v2/", [event("v2", 3)], 100_000 - fleet_logs.FOLLOW_LOOKBACK_MS)
        expect("v1/", [event("v1", 4)], back)
        follow(
            engine,
            query,
            lambda line: shown.append(f"{line.version}: {line.message}"),
            sleep=pause,
            now_ms=lambda: now[0],
            serving=lambda: next(serving),
        )
        stub.assert_no_pending_responses()
    assert shown == ["v1: v1 line 1", "v1: v1 line 2", "v2: v2 line 3", "v1: v1 line 4"]
    assert said == [
        "logs: following v2 too: it takes traffic now",
        "logs: no longer following v2: it takes no traffic",
    ]


def test_the_failure_message_quotes_the_instance_that_says_it_failed():
    """The one request that failed the gate reached one of green's instances: quote that one,
    whatever its id, and the first when none says so.
    """
    from deployer.release.green_logs import LastLines

    quiet = ["hello v2 listening on 10.0.1.7:8080"]
    failed = [*quiet, "ERROR GET /: KeyError: 'DATABASE_URL'"]
    found = LastLines("v2", {"i-0aaaaaaa": quiet, "i-0bbbbbbb": failed})
    assert found.sentence().startswith("Last lines from i-0bbbbbbb: ")
    assert "KeyError: 'DATABASE_URL'" in found.sentence()
    assert LastLines("v2", {"i-0b": ["Traceback (most recent call last):"], "i-0a": quiet})
    assert LastLines("v2", {"i-0b": quiet, "i-0a": quiet}).most_telling() == "i-0a"
    assert LastLines("v2", {"i-0b": ["java.lang.IllegalStateException: x"], "i-0a": quiet})
    assert (
        LastLines(
            "v2", {"i-0b": ["java.lang.IllegalStateException: x"], "i-0a": quiet}
        ).most_telling()
        == "i-0b"
    )
