"""What the release scenario modules share: an engine wired as the CLI wires it, on the
sandbox, and faults injected at the adapter edge. The `workdir` fixture (one sandbox per
module) is in conftest.py.
"""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

from botocore.exceptions import ClientError

from deployer.aws.poller import Poll, Poller
from deployer.config.loading import load_config
from deployer.release.engine import Engine
from deployer.sandbox import control
from deployer.sandbox.layout import Layout
from deployer.target import open_target

CONFIG = """\
app: shop
environment: {env}
artifact: {{source: {source}}}
capacity: {{min: 1, desired: 1, max: 4}}
health_check: {{interval_seconds: 5, timeout_seconds: 2, deadline_seconds: 20}}
strategy: {{kind: {kind}, steps: [10, 50, 100], bake_seconds: {bake}, watch_seconds: {watch}}}
rollback_window: {window}
gates:
  http: [{{path: /healthz, expect_status: 200}}]
  alarms: {alarms}
  max_failures: {max_failures}
  interval_seconds: 0.5
"""


def app_variant(workdir, name, **files):
    target = workdir / name
    if not target.exists():
        shutil.copytree(workdir / "app", target)
        for file_name, value in files.items():
            (target / file_name).write_text(value)
    return name


def engine_for(
    workdir,
    env,
    source="app",
    kind="all_at_once",
    bake=1,
    max_failures=0,
    window=3600,
    alarms="[]",
    watch=0,
):
    path = workdir / f"{env}-{source}.yaml"
    path.write_text(
        CONFIG.format(
            env=env,
            source=source,
            kind=kind,
            bake=bake,
            window=window,
            alarms=alarms,
            max_failures=max_failures,
            watch=watch,
        )
    )
    loaded = load_config(path)
    lines: list[str] = []
    poller = Poller(report=lines.append, first_interval=0.1, max_interval=0.5)
    runtime = open_target(loaded, workdir, poller, lines.append)
    engine = Engine(loaded, runtime, poller, lines.append, workdir)
    engine.lines = lines  # type: ignore[attr-defined]
    return engine


def served(url, n=10):
    return {urllib.request.urlopen(url, timeout=5).read().decode().strip() for _ in range(n)}


def failing_restores(engine, blue_group, errors):
    """Make the listener change that sends traffic back to blue alone raise `errors`."""
    original = engine.elb.set_weights

    def set_weights(listener_arn, weights):
        if set(weights) == {blue_group} and errors:
            raise errors.pop(0)
        return original(listener_arn, weights)

    engine.elb.set_weights = set_weights


def throttled():
    return ClientError(
        {
            "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        "ModifyRule",
    )


def denied():
    return ClientError(
        {
            "Error": {"Code": "AccessDenied", "Message": "not allowed"},
            "ResponseMetadata": {"HTTPStatusCode": 403},
        },
        "ModifyRule",
    )


def break_fleet(engine, version):
    """Make every instance of `version`'s fleet answer its health check with 500."""
    layout = Layout.for_workdir(engine.workdir)
    infra = engine.stacks.existing()
    fleet = next(f for f in engine.fleets.observe(infra).fleets if f.version == version)
    for instance in engine.asg.describe(fleet.asg_name).instance_ids:
        host = control.host_of(layout, instance)
        (Path(host["root"]) / "opt/app/current/BROKEN").write_text("1")
    return fleet


def wait_unhealthy(engine, fleet):
    def check():
        states = {t.state.value for t in engine.elb.target_health(fleet.target_group_arn)}
        return Poll(states == {"unhealthy"}, str(states))

    Poller(first_interval=0.1, max_interval=0.5).until("unhealthy", check, 30)
