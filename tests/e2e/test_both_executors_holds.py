"""The same journals, weights and verdicts from both executors (tests/e2e/executors.py):
a failure during the watch, an inconclusive step, a pause then promote.
"""

from __future__ import annotations

import pytest

from tests.e2e import executors

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    with executors.project(tmp_path_factory.mktemp("executors")) as project:
        yield project


@pytest.mark.parametrize(
    "scenario", ["fails during the watch", "inconclusive", "paused, then promoted"]
)
def test_both_executors_journal_the_same_outcome_weights_and_verdict(cli, scenario):
    executors.check_both(cli, scenario)
