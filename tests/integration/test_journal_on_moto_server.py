"""The release journal in DynamoDB (moto server over HTTP)."""

import pytest

from deployer.aws.dynamodb import Journal
from deployer.core.model import Actor, Kind, Outcome, Phase, ReleaseRecord

pytestmark = pytest.mark.integration


def record(release_id, version, outcome=Outcome.SUCCEEDED):
    return ReleaseRecord(
        release_id=release_id,
        kind=Kind.RELEASE,
        version=version,
        started_at="2026-11-26T10:00:00Z",
        actor=Actor("ci", "runner", "job-7"),
        outcome=outcome,
        phase=Phase.DONE,
        images={"us-east-1": "ami-1"},
        weights={"tg/a": 100},
    )


def test_the_table_is_created_once_and_history_is_newest_first(aws, fast_poller):
    journal = Journal(aws, fast_poller, "hello/prod")
    journal.ensure_table()
    journal.ensure_table()
    journal.write(record("20261126T100000Z-aaaaaa", "v1"))
    journal.write(record("20261126T110000Z-bbbbbb", "v2", Outcome.FAILED))
    history = journal.history()
    assert [r.version for r in history] == ["v2", "v1"]
    assert history[1] == record("20261126T100000Z-aaaaaa", "v1")
    assert history[0].actor.ci_job == "job-7"


def test_rewriting_a_record_updates_it_in_place(aws, fast_poller):
    journal = Journal(aws, fast_poller, "hello/prod")
    journal.ensure_table()
    first = record("20261126T100000Z-aaaaaa", "v1", Outcome.IN_PROGRESS)
    journal.write(first)
    journal.write(first.finished(Outcome.SUCCEEDED, "2026-11-26T10:05:00Z"))
    assert [(r.version, r.outcome) for r in journal.history()] == [("v1", Outcome.SUCCEEDED)]


def test_environments_do_not_see_each_other(aws, fast_poller):
    prod = Journal(aws, fast_poller, "hello/prod")
    prod.ensure_table()
    prod.write(record("20261126T100000Z-aaaaaa", "v1"))
    assert Journal(aws, fast_poller, "hello/staging").history() == []


def test_history_without_a_table_is_empty(aws, fast_poller):
    assert Journal(aws, fast_poller, "hello/prod").history() == []
