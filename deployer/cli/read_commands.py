"""Commands that read and change nothing: status, history, report, check, schema."""

from __future__ import annotations

import json
from pathlib import Path

import click

from deployer.cli.context import Context
from deployer.cli.options import OUTPUT
from deployer.cli.outcome import ENDING, say
from deployer.cli.render import history_text, status_text
from deployer.sandbox.layout import Layout


@click.command()
@OUTPUT
@click.pass_obj
def status(obj: Context, output: str) -> None:
    """What is live, which fleets exist, the load balancer URL, and what to do if stuck."""
    from deployer.ops.operations import status as read_status

    obj.output(output)
    engine = obj.engine(start_sandbox=False)
    data = ENDING.run(lambda: read_status(engine))
    ENDING.emit(data, status_text(data))


@click.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@OUTPUT
@click.pass_obj
def history(obj: Context, limit: int, output: str) -> None:
    """The recorded releases, rollbacks and execs, newest first."""
    from deployer.ops.fleet_exec import history as read_execs
    from deployer.ops.operations import history as read_history

    obj.output(output)
    engine = obj.engine(start_sandbox=False)
    records = ENDING.run(lambda: read_history(engine, limit))
    execs = ENDING.run(lambda: read_execs(engine, limit))
    ENDING.emit({"releases": records, "execs": execs}, history_text(records, execs, limit))


@click.command()
@click.argument("release_id", default="latest", metavar="[RELEASE_ID|latest]")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The picture to write: FILE.svg or FILE.png.",
)
@click.option(
    "--events",
    "events_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Draw this --events file instead of the release recorded under .deployer/events/.",
)
@OUTPUT
@click.pass_obj
def report(obj: Context, release_id: str, out: Path, events_file: Path | None, output: str) -> None:
    """Draw one release: its phases, each version's traffic, its gates, a failure, a rollback."""
    from deployer.output.outputs import events_dir
    from deployer.output.timeline import draw, find_release, read_events

    obj.output(output)
    if events_file is not None:
        source, events = events_file, ENDING.run(lambda: read_events(events_file))
    else:
        source, events = ENDING.run(lambda: find_release(events_dir(obj.workdir), release_id))
    shown = ENDING.run(lambda: draw(events, out))
    text = (
        f"{out}: {len(shown['phases'])} phases, versions {', '.join(shown['versions']) or '-'}, "
        f"{shown['gates']['pass']} passing and {shown['gates']['fail']} failing gate "
        f"observations; {shown['outcome']}"
    )
    ENDING.emit({**shown, "events": str(source)}, text)


@click.command("check")
@OUTPUT
@click.pass_obj
def check(obj: Context, output: str) -> None:
    """Run every check that changes nothing: config, templates, playbook, artifact, and the
    gate alarms and an s3:// artifact when AWS (or a running sandbox) answers. Exit 2 if bad.
    """
    from deployer.release.preflight import check_aws

    obj.output(output)
    loaded = obj.checked()
    engine = obj.engine(start_sandbox=False) if _reachable_without_starting(obj) else None
    checked = ["config", "templates", "playbook", "artifact"]
    skipped = ""
    if engine is not None:
        from deployer.release.preflight import check_local

        ENDING.run(lambda: check_aws(engine, check_local(loaded, obj.workdir, say)))
        checked.append("aws (alarms, artifact, credentials)")
    else:
        skipped = "the sandbox is not running: the AWS checks were skipped"
    data = {
        "config": str(loaded.path),
        "app": loaded.spec.app,
        "environment": loaded.spec.environment,
        "checked": checked,
        "skipped": skipped,
    }
    text = f"{loaded.path}: ok ({loaded.spec.app}/{loaded.spec.environment}; {', '.join(checked)})"
    ENDING.emit(data, text + (f"\n{skipped}" if skipped else ""))


def _reachable_without_starting(obj: Context) -> bool:
    from deployer.config.target import AwsTarget
    from deployer.sandbox import control

    if isinstance(obj.config().spec.target, AwsTarget):
        return True
    return control.status(Layout.for_workdir(obj.workdir)) is not None


@click.command("schema")
def schema() -> None:
    """Print the JSON Schema of deployer.yaml."""
    from deployer.config.loading import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


COMMANDS = [status, history, report, check, schema]
