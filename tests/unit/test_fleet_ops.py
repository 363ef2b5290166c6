"""Operating a fleet without SSH, decided: which streams and lines `deployer logs` reads, which
fleet it means, how `deployer exec` judges each instance, and what a failure quotes. Pure.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from deployer.core.execs import (
    NOT_REACHED,
    ExecRecord,
    InstanceResult,
    checked_limits,
    count_of,
    failed,
    results_for,
    summary,
)
from deployer.core.logstreams import (
    Line,
    checked_instance,
    interleaved,
    line_of,
    since_ms,
    stream_prefix,
)
from deployer.core.model import Actor, Fleet, LiveState, Outcome
from deployer.core.names import Names
from deployer.errors import BadInput
from deployer.ops.fleet_select import choose
from deployer.release.green_logs import LastLines, collapsed

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


# ---- logs ----------------------------------------------------------------------------------


def test_since_takes_durations_and_times():
    assert since_ms("10m", NOW) == NOW_MS - 600_000
    assert since_ms("90s", NOW) == NOW_MS - 90_000
    assert since_ms("2h", NOW) == NOW_MS - 7_200_000
    assert since_ms("1d", NOW) == NOW_MS - 86_400_000
    assert since_ms("2026-11-26T11:00:00Z", NOW) == NOW_MS - 3_600_000
    assert since_ms("2026-11-26T11:00:00", NOW) == NOW_MS - 3_600_000  # UTC unless it says


@pytest.mark.parametrize("bad", ["10", "ten minutes", "-5m", "5y", ""])
def test_a_since_that_is_neither_is_bad_input(bad):
    with pytest.raises(BadInput, match="--since"):
        since_ms(bad, NOW)


def test_an_instance_must_look_like_one():
    assert checked_instance("i-0abc1234def567890") == "i-0abc1234def567890"
    assert checked_instance(None) is None
    with pytest.raises(BadInput, match="--instance"):
        checked_instance("web-1")


def test_a_version_reads_its_own_streams_and_not_a_longer_versions():
    assert stream_prefix("v1") == "v1/"  # not v1.2's: the slash ends the version
    assert stream_prefix("v1", "i-0abc1234") == "v1/i-0abc1234/"


def test_lines_are_named_by_instance_and_version_and_other_streams_are_left_out():
    line = line_of(NOW_MS, "v1.2/i-0abc1234/app", "KeyError: 'DATABASE_URL'\n")
    assert line == Line(NOW_MS, "i-0abc1234", "v1.2", "app", "KeyError: 'DATABASE_URL'")
    assert (
        line.text()
        == "2026-11-26T12:00:00.000Z i-0abc1234 v1.2 app        KeyError: 'DATABASE_URL'"
    )
    assert line.to_json()["instance"] == "i-0abc1234"
    # Run Command's output streams share the group: <command id>/<instance>/<plugin>/stdout
    assert line_of(NOW_MS, "6f1c-2/i-0abc1234/aws-runShellScript/stdout", "x") is None
    assert line_of(NOW_MS, "v1/web-1/app", "x") is None


def test_lines_of_several_instances_are_interleaved_by_time_each_in_its_order():
    a1 = Line(3, "i-0aaaaaaa", "v1", "app", "a1")
    a2 = Line(3, "i-0aaaaaaa", "v1", "app", "a2")
    b1 = Line(2, "i-0bbbbbbb", "v1", "app", "b1")
    b2 = Line(5, "i-0bbbbbbb", "v1", "app", "b2")
    assert [x.message for x in interleaved([a1, a2, b1, b2])] == ["b1", "a1", "a2", "b2"]


# ---- which fleet ---------------------------------------------------------------------------


def fleet(version: str, release_id: str, arn: str) -> Fleet:
    return Fleet(
        f"shop-prod-fleet-{version}", version, "d", "ami-1", release_id, "CREATE_COMPLETE", arn
    )


ENGINE = SimpleNamespace(names=Names("shop", "prod"))
LIVE = LiveState(
    (
        fleet("v1", "20261101T000000Z-a", "tg1"),
        fleet("v2", "20261102T000000Z-b", "tg2"),
        fleet("v3", "20261103T000000Z-c", "tg3"),
    ),
    {"tg2": 100, "tg1": 0},
).with_weights()


def test_live_is_the_fleet_with_production_traffic_and_green_the_newest_other():
    assert (choose(ENGINE, "live", LIVE).version, choose(ENGINE, "live", LIVE).role) == (
        "v2",
        "live",
    )
    assert choose(ENGINE, "green", LIVE).version == "v3"
    picked = choose(ENGINE, "v1", LIVE)
    assert (picked.version, picked.role, picked.fleet.stack_name) == (
        "v1",
        "v1",
        "shop-prod-fleet-v1",
    )


def test_a_retired_version_is_still_a_version_whose_lines_can_be_read():
    picked = choose(ENGINE, "v0.9", LIVE)
    assert (picked.version, picked.fleet) == ("v0.9", None)


def test_nothing_live_or_no_green_is_bad_input():
    with pytest.raises(BadInput, match="nothing is live in shop/prod"):
        choose(ENGINE, "live", LiveState())
    only = LiveState((fleet("v2", "r", "tg2"),), {"tg2": 100}).with_weights()
    with pytest.raises(BadInput, match="no green fleet"):
        choose(ENGINE, "green", only)
    with pytest.raises(BadInput, match="version 'v 1'"):
        choose(ENGINE, "v 1", LIVE)


# ---- exec ----------------------------------------------------------------------------------


def test_rate_controls_are_run_commands_own():
    assert checked_limits("50", "0", 600) == ("50", "0", 600)
    assert checked_limits("25%", "10%", 1) == ("25%", "10%", 1)
    for concurrency, errors, timeout, option in [
        ("0", "0", 600, "--max-concurrency"),
        ("101%", "0", 600, "--max-concurrency"),
        ("many", "0", 600, "--max-concurrency"),
        ("5", "-1", 600, "--max-errors"),
        ("5", "0", 0, "--timeout"),
        ("5", "0", 200_000, "--timeout"),
    ]:
        with pytest.raises(BadInput, match=option):
            checked_limits(concurrency, errors, timeout)


def test_percentages_count_instances():
    assert count_of("50", 16, 1) == 50
    assert count_of("25%", 16, 1) == 4
    assert count_of("10%", 16, 1) == 2  # concurrency rounds up
    assert count_of("10%", 16, 0) == 1  # errors round down
    assert count_of("1%", 2, 1) == 1  # never below one at a time


def test_an_instance_fails_unless_its_invocation_succeeded_or_was_never_reached():
    results = results_for(
        ["i-0aaaaaaa", "i-0bbbbbbb", "i-0ccccccc"],
        [
            InstanceResult("i-0bbbbbbb", "Failed", 1, "boom"),
            InstanceResult("i-0aaaaaaa", "Success", 0, "Linux"),
        ],
    )
    assert [(r.instance_id, r.status) for r in results] == [
        ("i-0aaaaaaa", "Success"),
        ("i-0bbbbbbb", "Failed"),
        ("i-0ccccccc", NOT_REACHED),
    ]
    assert [r.instance_id for r in failed(results)] == ["i-0bbbbbbb", "i-0ccccccc"]
    assert summary(results) == (
        "2/3 failed: i-0bbbbbbb (exit 1), i-0ccccccc (not reached: no SSM agent answered for it)"
    )


def test_an_exec_is_journalled_as_it_ends_and_reads_back_the_same():
    record = ExecRecord(
        "20261126T120000Z-abc123",
        "2026-11-26T12:00:00Z",
        Actor("ana", "ci-7", "run 42"),
        ("uname", "-a"),
        "v2",
        "shop-prod-fleet-v2",
        "live",
        command_id="6f1c",
    )
    done = record.finished(
        "2026-11-26T12:00:05Z",
        [InstanceResult("i-0aaaaaaa", "Success", 0), InstanceResult("i-0bbbbbbb", "TimedOut")],
    )
    assert done.outcome is Outcome.FAILED
    assert done.reason == "1/2 failed: i-0bbbbbbb (timed out)"
    assert ExecRecord.from_json(done.to_json()) == done


# ---- a failure that explains itself --------------------------------------------------------


def test_a_failure_quotes_the_last_lines_of_one_instance_and_says_where_the_rest_are():
    found = LastLines(
        "v1.3",
        {
            "i-0bbbbbbb": ["starting", "KeyError: 'DATABASE_URL'"],
            "i-0aaaaaaa": [
                "starting",
                "Traceback (most recent call last):",
                "KeyError: 'DATABASE_URL'",
            ],
        },
    )
    assert found.sentence() == (
        "Last lines from i-0aaaaaaa: starting | Traceback (most recent call last): | "
        "KeyError: 'DATABASE_URL' (and 1 more instance(s): `deployer logs v1.3`)"
    )
    assert LastLines("v1.3").sentence() == (
        "v1.3's app logged nothing since the release started (`deployer logs v1.3` shows its boot)"
    )


def test_twenty_copies_of_a_line_are_one_and_the_first_error_since_boot_is_kept():
    refused = "upstream: connection refused"
    lines = collapsed(["starting", *[refused] * 20, "retrying", refused, refused])
    assert lines == ["starting", f"{refused} ×20", "retrying", f"{refused} ×2"]
    found = LastLines(
        "v1.3",
        {"i-0aaaaaaa": ["starting", f"{refused} ×20", "retrying", f"{refused} ×2"]},
        {"i-0aaaaaaa": "KeyError: 'DATABASE_URL'"},
    )
    assert found.sentence() == (
        f"Last lines from i-0aaaaaaa: {refused} ×20 | retrying | {refused} ×2; its first error "
        "since boot: KeyError: 'DATABASE_URL' (`deployer logs v1.3` shows more)"
    )
    shown = LastLines("v1", {"i-0a": ["KeyError: 'X'"]}, {"i-0a": "KeyError: 'X'"})
    assert "first error" not in shown.sentence()  # already among the lines shown
