"""The CLI: parse -> wire -> call a use case -> render -> exit code. Nothing else lives here.

Human progress goes to stderr; with --output json, stdout holds exactly one JSON document.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.text import Text

from deployer.aws.poller import Poller, PollTimeout
from deployer.config import LoadedConfig, json_schema, load_config
from deployer.errors import (
    EXIT_CODE_MEANINGS,
    DeployerError,
    ExitCode,
    NeedsHuman,
    Unreachable,
)
from deployer.sandbox.layout import Layout

T = TypeVar("T")
stderr = Console(stderr=True, highlight=False, soft_wrap=True)
OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON document on stdout, for CI.",
)


WAIT = click.option(
    "--wait",
    "wait_s",
    type=float,
    is_flag=False,
    flag_value=1800.0,
    default=None,
    metavar="[SECONDS]",
    help="Queue behind a held lock (default 1800 s) instead of exiting 3.",
)


class Context:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.workdir = Path.cwd()
        self.strategy: str | None = None
        self.aws: Any = None  # the AwsContext of the engine, once made: did changes begin?

    def report(self, line: str) -> None:
        print(f"· {line}", file=sys.stderr, flush=True)

    def config(self) -> LoadedConfig:
        loaded = load_config(self.config_path)
        if self.strategy is None:
            return loaded
        strategy = loaded.spec.strategy.model_copy(update={"kind": self.strategy})
        return LoadedConfig(
            path=loaded.path, spec=loaded.spec.model_copy(update={"strategy": strategy})
        )

    def engine(self, start_sandbox: bool = True) -> Any:
        from deployer.engine import Engine
        from deployer.target import open_target

        loaded = self.config()
        poller = Poller(report=self.report)
        runtime = open_target(loaded, self.workdir, poller, self.report, start_sandbox)
        self.aws = runtime.aws
        return Engine(loaded, runtime, poller, self.report, self.workdir)

    @property
    def changes_begun(self) -> bool:
        return bool(self.aws is not None and self.aws.changes_begun)


CONTEXT: Context | None = None  # set by the `cli` group; run_command reads it


def _aws_failure(exc: Exception) -> DeployerError:
    """An AWS error nothing mapped: exit 5 before any change, exit 4 after."""
    if CONTEXT is not None and CONTEXT.changes_begun:
        return NeedsHuman(
            f"AWS: {exc}. Changes had begun; the journal records where this run stopped: "
            "run `deployer status`, then rerun the command (it converges) or `deployer abort`."
        )
    return Unreachable(f"AWS: {exc}. Nothing was changed.")


def run_command(action: Callable[[], T]) -> T:
    """The one place errors become exit codes."""
    try:
        return action()
    except DeployerError as exc:
        fail(exc)
    except (ClientError, BotoCoreError, PollTimeout) as exc:
        fail(_aws_failure(exc))
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/yellow]")
        sys.exit(130)


def fail(exc: DeployerError) -> NoReturn:
    stderr.print(Text.assemble(("error: ", "bold red"), exc.message))
    stderr.print(
        Text(f"exit {int(exc.exit_code)}: {EXIT_CODE_MEANINGS[exc.exit_code]}", style="dim")
    )
    sys.exit(int(exc.exit_code))


def emit(output: str, data: Any, text: str) -> None:
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        click.echo(text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(path_type=Path),
    default=Path("deployer.yaml"),
    show_default=True,
    help="The deployer.yaml to use.",
)
@click.version_option(package_name="deployer")
@click.pass_context
def cli(ctx: click.Context, config_path: Path) -> None:
    """Bake, release and roll back an EC2 web app behind an ALB."""
    global CONTEXT
    ctx.obj = CONTEXT = Context(config_path)


@cli.command()
@click.argument("version")
@click.option(
    "--strategy",
    type=click.Choice(["all_at_once", "canary"]),
    help="Override deployer.yaml's strategy.kind for this release.",
)
@WAIT
@OUTPUT
@click.pass_obj
def release(
    obj: Context, version: str, strategy: str | None, wait_s: float | None, output: str
) -> None:
    """Bake (or reuse) VERSION's image, start its fleet, gate it, and move traffic to it."""
    from deployer.core.names import Version
    from deployer.release import Release

    obj.strategy = strategy
    run_command(lambda: (Version.parse(version), obj.config()))  # bad input: before any start
    engine = run_command(obj.engine)
    result = run_command(lambda: Release(engine).run(version, wait_s))
    record = result.record
    data = {
        "release_id": record.release_id,
        "version": record.version,
        "outcome": record.outcome.value,
        "images": dict(record.images),
        "fleet_stack": record.fleet_stack,
        "url": result.url,
        "reused_image": result.reused_image,
        "phase_seconds": result.phase_seconds,
    }
    emit(output, data, f"{record.version} is live: {result.url}")


@cli.command()
@click.argument("version")
@WAIT
@OUTPUT
@click.pass_obj
def bake(obj: Context, version: str, wait_s: float | None, output: str) -> None:
    """Bake (or reuse) VERSION's image without releasing it."""
    from deployer.baking import bake as bake_image
    from deployer.core.names import Version

    run_command(lambda: (Version.parse(version), obj.config()))  # bad input: before any start
    engine = run_command(obj.engine)
    result = run_command(lambda: bake_image(engine, version, wait_s))
    data = {
        "version": result.version,
        "digest": result.digest,
        "image_id": result.image_id,
        "reused": result.reused,
        "images": result.images,
        "mutating_calls": result.mutating_calls,
    }
    verb = "reused" if result.reused else "baked"
    emit(output, data, f"{result.version}: {verb} image {result.image_id}")


@cli.command()
@click.option("--to", "to_version", metavar="VERSION", help="The version to go back to.")
@WAIT
@OUTPUT
@click.pass_obj
def rollback(obj: Context, to_version: str | None, wait_s: float | None, output: str) -> None:
    """Traffic back to the previous fleet: one listener change while it is warm."""
    from deployer.operations import record_json
    from deployer.operations import rollback as roll_back

    engine = run_command(obj.engine)
    record = run_command(lambda: roll_back(engine, to_version, wait_s))
    data = {
        **record_json(record),
        "switch_seconds": round(engine.phase_seconds.get("switch", 0.0), 3),
    }
    emit(output, data, f"rolled back: {record.version} is live ({record.fleet_stack})")


@cli.command()
@WAIT
@OUTPUT
@click.pass_obj
def abort(obj: Context, wait_s: float | None, output: str) -> None:
    """Roll the in-flight release back on purpose (traffic to where it was before it)."""
    from deployer.operations import abort as abort_release
    from deployer.operations import record_json

    engine = run_command(obj.engine)
    record = run_command(lambda: abort_release(engine, wait_s))
    emit(output, record_json(record), f"aborted release {record.release_id} of {record.version}")


@cli.command()
@WAIT
@OUTPUT
@click.pass_obj
def gc(obj: Context, wait_s: float | None, output: str) -> None:
    """Delete fleets that left service more than rollback_window ago."""
    from deployer.operations import gc as collect

    engine = run_command(obj.engine)
    retired = run_command(lambda: collect(engine, wait_s))
    emit(
        output,
        {"retired": retired},
        "\n".join(f"retired {s}" for s in retired) or "nothing to retire",
    )


@cli.command()
@click.argument("lock_id")
@click.pass_obj
def unlock(obj: Context, lock_id: str) -> None:
    """Release the lock, only when given the id that holds it (see the exit-3 message)."""
    from deployer.operations import unlock_scope

    engine = run_command(obj.engine)
    click.echo(run_command(lambda: unlock_scope(engine, lock_id)))


@cli.command()
@click.argument("version")
@click.option("--strategy", type=click.Choice(["all_at_once", "canary"]))
@OUTPUT
@click.pass_obj
def plan(obj: Context, version: str, strategy: str | None, output: str) -> None:
    """What `release VERSION` would do now. Changes nothing."""
    from deployer.operations import plan as plan_release

    obj.strategy = strategy
    engine = run_command(obj.engine)
    data = run_command(lambda: plan_release(engine, version))
    if data["noop"]:
        text = f"nothing to do: {data['reason']}"
    else:
        lines = [
            f"release {data['version']} ({data['digest'][:12]})",
            "  create network and service stacks" if data["creates_infra"] else "",
            f"  image: {'bake a new one' if data['bake'] else 'reuse ' + str(data['image'])}",
            f"  fleet: {data['fleet_stack']} x{data['capacity']}",
            *[f"  {s['name']}, held {s['hold_seconds']}s" for s in data["steps"]],
            *[f"  retire {stack}" for stack in data["retire"]],
        ]
        text = "\n".join(line for line in lines if line)
    emit(output, data, text)


@cli.command()
@OUTPUT
@click.pass_obj
def status(obj: Context, output: str) -> None:
    """What is live, which fleets exist, the load balancer URL, and what to do if stuck."""
    from deployer.operations import status as read_status

    data = run_command(lambda: read_status(obj.engine(start_sandbox=False)))
    lines = [
        f"{data['app']}/{data['environment']} on {data['target']}",
        f"live: {data['live_version'] or 'nothing'}",
        f"url:  {data['url'] or '-'}",
    ]
    for fleet in data["fleets"]:
        lines.append(
            f"  {fleet['role']:5} {fleet['version']:<12} weight {fleet['weight']:>3}  "
            f"{fleet['healthy']}/{fleet['desired']} healthy  {fleet['stack']}"
        )
    if data["last"]:
        last = data["last"]
        lines.append(
            f"last: {last['kind']} {last['version']} {last['outcome']} "
            f"({last['started_at']}, {last['actor']}) {last['reason']}".rstrip()
        )
    if data["lock"]:
        lines.append(f"lock: {data['lock']}")
    if data["advice"]:
        lines.append(f"todo: {data['advice']}")
    emit(output, data, "\n".join(lines))


@cli.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@OUTPUT
@click.pass_obj
def history(obj: Context, limit: int, output: str) -> None:
    """The recorded releases and rollbacks, newest first."""
    from deployer.operations import history as read_history

    records = run_command(lambda: read_history(obj.engine(start_sandbox=False), limit))
    lines = [
        f"{r['started_at']}  {r['kind']:8} {r['version']:<12} {r['outcome']:<11} "
        f"{r['actor']}  {r['reason']}".rstrip()
        for r in records
    ]
    emit(output, {"releases": records}, "\n".join(lines) or "no releases recorded")


@cli.group()
def sandbox() -> None:
    """The embedded local AWS (moto server + local hosts + local load balancer)."""


@sandbox.command("up")
@click.option(
    "--profile",
    type=click.Choice(["fast", "aws"]),
    default=None,
    help="fast: answers at once (default, or DEPLOYER_SANDBOX_PROFILE). aws: behaves like AWS "
    "(latency, eventual consistency, client tokens, SigV4-only S3, ...).",
)
@click.pass_obj
def sandbox_up(obj: Context, profile: str | None) -> None:
    """Start the sandbox in the background (release does this itself)."""
    from deployer.sandbox import control

    state, started = run_command(lambda: control.up(Layout.for_workdir(obj.workdir), profile))
    click.echo(
        f"sandbox {'started' if started else 'already running'} at {state.endpoint} "
        f"(profile {state.profile}, time scale {state.time_scale})"
    )


@sandbox.command("down")
@click.pass_obj
def sandbox_down(obj: Context) -> None:
    """Stop the sandbox and every process it started; its state is forgotten."""
    from deployer.sandbox import control

    was_up = control.down(Layout.for_workdir(obj.workdir))
    click.echo("sandbox stopped" if was_up else "sandbox was not running")


@sandbox.command("status")
@OUTPUT
@click.pass_obj
def sandbox_status(obj: Context, output: str) -> None:
    """Whether the sandbox runs, where, and with which profile."""
    from deployer.sandbox import control

    state = control.status(Layout.for_workdir(obj.workdir))
    data = {
        "running": state is not None,
        "endpoint": state.endpoint if state else None,
        "profile": state.profile if state else None,
        "time_scale": state.time_scale if state else None,
        "answering": control.answers(state.endpoint) if state else False,
    }
    text = "sandbox not running"
    if state is not None:
        text = f"sandbox running at {state.endpoint} (profile {state.profile})"
        if not data["answering"]:
            text += ", not answering (an outage?)"
    emit(output, data, text)


@cli.command("schema")
def schema() -> None:
    """Print the JSON Schema of deployer.yaml."""
    click.echo(json.dumps(json_schema(), indent=2))


@cli.command("check")
@click.pass_obj
def check(obj: Context) -> None:
    """Validate deployer.yaml and exit (2 if it is bad)."""
    loaded = run_command(obj.config)
    click.echo(f"{loaded.path}: ok ({loaded.spec.app}/{loaded.spec.environment})")


def main() -> None:
    try:
        cli.main(prog_name="deployer", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(int(ExitCode.BAD_INPUT))
    except click.exceptions.Abort:
        sys.exit(130)
