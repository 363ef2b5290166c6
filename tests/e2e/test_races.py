"""Several pipelines releasing at once: exactly one proceeds, the others exit 3 without
writing anything, checked against the live AWS state (the sandbox).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.e2e.test_durability import cli, configure, live_state

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from tests.e2e import test_durability

    yield from test_durability.project.__wrapped__(tmp_path_factory)


@pytest.mark.parametrize("racers", [2, 5, 20])
def test_of_several_releases_started_at_once_exactly_one_proceeds(project, racers):
    workdir, env = project
    env_name = f"race-{racers}"
    configure(workdir, env_name, kind="all_at_once")
    assert cli(workdir, env, "release", "v1").returncode == 0
    # The winner must still hold the lock when the slowest racer gets there: on two cores,
    # twenty preflights take tens of seconds.
    configure(workdir, env_name, bake=8 + racers, kind="all_at_once")
    before = live_state(workdir, env_name)
    history_before = json.loads(cli(workdir, env, "history", "--output", "json").stdout)

    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "deployer", "release", f"v{racers}"],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(racers)
    ]
    results = [(run.wait(timeout=600), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0] + [3] * (racers - 1), [err[-300:] for _, err in results]
    for code, stderr in results:
        if code == 3:
            assert "is locked by" in stderr and "deployer unlock lock-" in stderr

    after = live_state(workdir, env_name)
    assert after["fleets"] == sorted(["v1", f"v{racers}"])
    images = after["images"]  # bake keys: one image per build, whoever raced
    assert len(set(images)) == len(images) and after["builders"] == 0
    history = json.loads(cli(workdir, env, "history", "--output", "json").stdout)["releases"]
    assert len(history) == len(history_before["releases"]) + 1  # only the winner wrote
    assert before["fleets"] == ["v1"]
