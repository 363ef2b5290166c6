"""The same journals, weights and verdicts from both executors (tests/e2e/executors.py):
a pass, a gate failure at each step, an abort.
"""

from __future__ import annotations

import pytest

from tests.e2e import executors

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    with executors.project(tmp_path_factory.mktemp("executors")) as project:
        yield project


@pytest.mark.parametrize("scenario", ["pass", "fails at step 1", "fails at step 2", "abort"])
def test_both_executors_journal_the_same_outcome_weights_and_verdict(cli, scenario):
    executors.check_both(cli, scenario)
