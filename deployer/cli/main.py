"""The `deployer` command: the group, its commands, and the one way a run ends.

Parse -> wire -> call a use case -> render -> exit code; nothing else lives in deployer/cli/.
Human progress goes to stderr; the result goes to stdout, and with --output json stdout holds
exactly one JSON document on every exit (deployer.cli.outcome). The commands live by family:

    release_commands  release, bake, rollback, abort, plan       (what is live; plan previews)
    ops_commands      gc, unlock, destroy, infra, config, logs, exec
    read_commands     status, history, report, check, schema     (change nothing)
    sandbox_commands  sandbox up, down, status

beside what they share: context (Context: the config, the run's outputs, the engine),
options (shared click options), render (text for people), outcome (exit codes, JSON),
interrupts (Ctrl-C and SIGTERM).

Heavy modules (pydantic, boto3, the engine) are imported inside the commands that need them,
so that `--help` and a usage error answer at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from deployer.cli import ops_commands, read_commands, release_commands, sandbox_commands
from deployer.cli.context import Context
from deployer.cli.outcome import ENDING
from deployer.errors import BadInput


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


for family in (release_commands, read_commands, ops_commands, sandbox_commands):
    for command in family.COMMANDS:
        cli.add_command(command)


def main() -> None:
    from deployer.cli.interrupts import INTERRUPTS

    INTERRUPTS.install()  # SIGINT and SIGTERM alike; a second one never cuts the cleanup short
    argv = sys.argv[1:]
    argv = argv[: argv.index("--")] if "--" in argv else argv  # exec's command is not ours
    ENDING.json = any(
        a in ("--output=json", "-ojson") or (a in ("--output", "-o") and nxt == "json")
        for a, nxt in zip(argv, [*argv[1:], ""], strict=False)
    )
    try:
        cli.main(prog_name="deployer", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        ENDING.fail(BadInput(exc.format_message()), usage=True)
    except click.exceptions.Abort:
        ENDING.interrupted()
    except KeyboardInterrupt:
        ENDING.interrupted()
