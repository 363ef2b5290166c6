"""The CLI: parse -> wire -> call a use case -> render -> exit code. Nothing else lives here.

Human progress goes to stderr; with --output json, stdout holds exactly one JSON document.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from deployer.aws.poller import Poller
from deployer.config import LoadedConfig, json_schema, load_config
from deployer.errors import EXIT_CODE_MEANINGS, DeployerError, ExitCode
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


class Context:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.workdir = Path.cwd()

    def report(self, line: str) -> None:
        stderr.print(
            f"[dim]·[/dim] {line}", markup=True, soft_wrap=True
        ) if stderr.is_terminal else print(f"· {line}", file=sys.stderr, flush=True)

    def config(self) -> LoadedConfig:
        return load_config(self.config_path)

    def engine(self, start_sandbox: bool = True) -> Any:
        from deployer.engine import Engine
        from deployer.target import open_target

        loaded = self.config()
        poller = Poller(report=self.report)
        runtime = open_target(loaded, self.workdir, poller, self.report, start_sandbox)
        return Engine(loaded, runtime, poller, self.report, self.workdir)


def run_command(action: Callable[[], T]) -> T:
    """The one place errors become exit codes."""
    try:
        return action()
    except DeployerError as exc:
        stderr.print(f"[bold red]error:[/bold red] {exc.message}", highlight=False, soft_wrap=True)
        stderr.print(f"[dim]exit {int(exc.exit_code)}: {EXIT_CODE_MEANINGS[exc.exit_code]}[/dim]")
        sys.exit(int(exc.exit_code))
    except (ClientError, BotoCoreError) as exc:
        stderr.print(f"[bold red]error:[/bold red] AWS: {exc}", soft_wrap=True)
        stderr.print("[dim]the state may be half-changed; run `deployer status`[/dim]")
        sys.exit(int(ExitCode.NEEDS_HUMAN))
    except KeyboardInterrupt:
        stderr.print("[yellow]interrupted[/yellow]")
        sys.exit(130)


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
    ctx.obj = Context(config_path)


@cli.command()
@click.argument("version")
@OUTPUT
@click.pass_obj
def release(obj: Context, version: str, output: str) -> None:
    """Bake (or reuse) VERSION's image, start its fleet, gate it, and move traffic to it."""
    from deployer.core.names import Version

    run_command(lambda: (Version.parse(version), obj.config()))  # bad input: before any start
    result = run_command(lambda: obj.engine().release(version))
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
@click.option("--to", "to_version", metavar="VERSION", help="A warm fleet's version to go back to.")
@OUTPUT
@click.pass_obj
def rollback(obj: Context, to_version: str | None, output: str) -> None:
    """Move traffic back to the previous (warm) fleet: one listener change."""
    engine = run_command(lambda: obj.engine())
    record = run_command(lambda: engine.rollback(to_version))
    data = {
        "release_id": record.release_id,
        "version": record.version,
        "fleet_stack": record.fleet_stack,
        "previous_fleet": record.previous_fleet,
        "switch_seconds": round(engine.phase_seconds.get("switch", 0.0), 3),
    }
    emit(output, data, f"rolled back: {record.version} is live ({record.fleet_stack})")


@cli.command()
@OUTPUT
@click.pass_obj
def status(obj: Context, output: str) -> None:
    """What is live, which fleets exist, and the load balancer URL."""
    data = run_command(lambda: obj.engine(start_sandbox=False).status())
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
    emit(output, data, "\n".join(lines))


@cli.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@OUTPUT
@click.pass_obj
def history(obj: Context, limit: int, output: str) -> None:
    """The recorded releases and rollbacks, newest first."""
    records = run_command(lambda: obj.engine(start_sandbox=False).history(limit))
    lines = [
        f"{r['started_at']}  {r['kind']:8} {r['version']:<12} {r['outcome']:<10} "
        f"{r['actor']}  {r['reason']}".rstrip()
        for r in records
    ]
    emit(output, {"releases": records}, "\n".join(lines) or "no releases recorded")


@cli.group()
def sandbox() -> None:
    """The embedded local AWS (moto server + local hosts + local load balancer)."""


@sandbox.command("up")
@click.pass_obj
def sandbox_up(obj: Context) -> None:
    """Start the sandbox in the background (release does this itself)."""
    from deployer.sandbox import control

    state, started = run_command(lambda: control.up(Layout.for_workdir(obj.workdir)))
    click.echo(f"sandbox {'started' if started else 'already running'} at {state.endpoint}")


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
    """Whether the sandbox runs, and where."""
    from deployer.sandbox import control

    state = control.status(Layout.for_workdir(obj.workdir))
    data = {"running": state is not None, "endpoint": state.endpoint if state else None}
    emit(output, data, f"sandbox running at {state.endpoint}" if state else "sandbox not running")


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
