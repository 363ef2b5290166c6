"""The operator's commands: collect garbage, unlock, destroy, recover a stack, the
environment's settings, a fleet's logs, and a command run on every instance.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from deployer.cli.context import Context
from deployer.cli.options import EVENTS, OUTPUT, WAIT
from deployer.cli.outcome import ENDING
from deployer.errors import BadInput


@click.command()
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@WAIT
@EVENTS
@OUTPUT
@click.pass_obj
def gc(
    obj: Context, dry_run: bool, wait_s: float | None, events_to: str | None, output: str
) -> None:
    """Delete fleets past the rollback window, images beyond bake.keep_images (and their
    snapshots), and what killed bakes left (builders, temporary key pairs and groups).
    """
    from deployer.ops.operations import gc as collect

    obj.start_run("gc", None, events_to, output)
    engine = obj.engine()
    done = ENDING.run(lambda: collect(engine, wait_s, dry_run))
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb} fleet {s}" for s in done["retired"]]
    lines += [f"{verb} image {i['image']} ({i['region']})" for i in done["images"]]
    lines += [f"{verb} leftover {x}" for x in done["leftovers"]]
    changed = bool(done["retired"] or done["images"] or done["leftovers"]) and not dry_run
    ENDING.emit({**done, "changed": changed}, "\n".join(lines) or "gc: nothing to remove")


@click.command()
@click.argument("lock_id")
@OUTPUT
@click.pass_obj
def unlock(obj: Context, lock_id: str, output: str) -> None:
    """Release the lock, only when given the id that holds it (see the exit-3 message)."""
    from deployer.ops.operations import unlock_scope

    obj.output(output)
    engine = obj.engine()
    message = ENDING.run(lambda: unlock_scope(engine, lock_id))
    ENDING.emit({"message": message}, message)


@click.command()
@click.option("--yes", is_flag=True, help="Confirm: remove the environment.")
@WAIT
@OUTPUT
@click.pass_obj
def destroy(obj: Context, yes: bool, wait_s: float | None, output: str) -> None:
    """Remove the environment: its fleets, then the load balancer, then the network. The
    journal is kept. A protected environment is refused.
    """
    from deployer.ops.destroy import destroy as remove

    obj.output(output)
    engine = obj.engine()
    done = ENDING.run(lambda: remove(engine, yes, wait_s))
    text = "\n".join(f"removed {name}" for name in done["removed"]) or "nothing to destroy"
    ENDING.emit(done, text)


@click.group()
def infra() -> None:
    """The network and service stacks."""


@infra.command("recover")
@click.option(
    "--skip",
    "skip",
    multiple=True,
    metavar="LOGICAL_ID",
    help="A resource CloudFormation cannot roll back, left as it is (repeatable).",
)
@WAIT
@OUTPUT
@click.pass_obj
def infra_recover(obj: Context, skip: tuple[str, ...], wait_s: float | None, output: str) -> None:
    """Finish the rollback of a stack stuck in UPDATE_ROLLBACK_FAILED."""
    from deployer.ops.recovery import recover

    obj.output(output)
    engine = obj.engine()
    done = ENDING.run(lambda: recover(engine, skip, wait_s))
    text = (
        ", ".join(done["recovered"]) + " recovered" if done["recovered"] else "nothing to recover"
    )
    ENDING.emit(done, text)


@click.group("config")
def config_group() -> None:
    """The environment's settings (SSM Parameter Store), applied to instances at boot."""


@config_group.command("set")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--secure", is_flag=True, help="A SecureString: encrypted, never printed.")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the value from stdin.")
@OUTPUT
@click.pass_obj
def config_set(
    obj: Context, key: str, value: str | None, secure: bool, from_stdin: bool, output: str
) -> None:
    """Set KEY to VALUE (or to stdin: keep secrets out of the shell history)."""
    from deployer.ops.settings import set_setting

    obj.output(output)
    if from_stdin == (value is not None):
        ENDING.fail(BadInput("config set: give a VALUE or --stdin, not both and not neither"))
    text = sys.stdin.read().rstrip("\n") if from_stdin else str(value)
    engine = obj.engine()
    done = ENDING.run(lambda: set_setting(engine, key, text, secure))
    ENDING.emit(done, f"{key} set (version {done['version']}{', secure' if secure else ''})")


@config_group.command("get")
@click.argument("key")
@click.option("--reveal", is_flag=True, help="Print a secure value (decrypted).")
@OUTPUT
@click.pass_obj
def config_get(obj: Context, key: str, reveal: bool, output: str) -> None:
    """Print KEY's value; a secure one only with --reveal."""
    from deployer.ops.settings import get_setting

    obj.output(output)
    engine = obj.engine()
    found = ENDING.run(lambda: get_setting(engine, key, reveal))
    ENDING.emit(found, str(found["value"]))


@config_group.command("list")
@OUTPUT
@click.pass_obj
def config_list(obj: Context, output: str) -> None:
    """Every setting of this environment; secure values are not shown."""
    from deployer.ops.settings import list_settings

    obj.output(output)
    engine = obj.engine()
    found = ENDING.run(lambda: list_settings(engine))
    text = "\n".join(f"{s['key']}={s['value']}" for s in found) or "no settings"
    ENDING.emit({"settings": found}, text)


@config_group.command("unset")
@click.argument("key")
@OUTPUT
@click.pass_obj
def config_unset(obj: Context, key: str, output: str) -> None:
    """Remove KEY; new instances boot without it."""
    from deployer.ops.settings import unset_setting

    obj.output(output)
    engine = obj.engine()
    removed = ENDING.run(lambda: unset_setting(engine, key))
    ENDING.emit({"removed": removed}, f"{key} {'removed' if removed else 'was not set'}")


@click.command("logs")
@click.argument("fleet", default="live", metavar="[VERSION|live|green]")
@click.option(
    "--since",
    default="10m",
    show_default=True,
    help="How far back: 90s, 10m, 2h, 1d, or a time (2026-11-26T10:00:00Z).",
)
@click.option("--follow", "-f", is_flag=True, help="Keep showing new lines until Ctrl-C.")
@click.option(
    "--grep",
    "pattern",
    metavar="PATTERN",
    help="A CloudWatch Logs filter pattern: a word (KeyError), an exact phrase in double "
    "quotes, words to exclude (-healthz), or a regex between % signs.",
)
@click.option("--instance", "instance_id", metavar="ID", help="One instance's lines only.")
@OUTPUT
@click.pass_obj
def logs(
    obj: Context,
    fleet: str,
    since: str,
    follow: bool,
    pattern: str | None,
    instance_id: str | None,
    output: str,
) -> None:
    """A fleet's log lines (the app, its configure unit, cloud-init), by time, each named by
    its instance and version. A retired version's lines too, within the log group's retention.
    """
    from deployer.ops import fleet_logs as fleet_logs
    from deployer.ops.fleet_select import LIVE

    obj.output(output)
    engine = obj.engine(start_sandbox=False)
    query = ENDING.run(lambda: fleet_logs.query_for(engine, fleet, since, pattern, instance_id))
    obj.report(
        f"logs: {query.version} ({query.role}) in {query.group}"
        + (f", matching {query.pattern}" if query.pattern else "")
    )
    if follow:
        shown: list[Any] = []

        def show(line: Any) -> None:
            if output == "json":
                shown.append(line)
            else:
                click.echo(line.text())

        # `live` follows what serves traffic: a canary's green joins, and leaves at a rollback.
        serving = (lambda: fleet_logs.serving_versions(engine)) if query.role == LIVE else None
        ENDING.run(lambda: fleet_logs.follow(engine, query, show, serving=serving))
        lines = shown
    else:
        lines = ENDING.run(lambda: fleet_logs.read(engine, query))
    data = {**query.to_json(), "lines": [line.to_json() for line in lines]}
    if follow and output != "json":
        ENDING.emit(data, "")
    else:
        ENDING.emit(data, "\n".join(line.text() for line in lines) or "no lines")


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.option(
    "--fleet",
    "selector",
    default="live",
    show_default=True,
    metavar="live|green|VERSION",
    help="Which fleet's instances run the command.",
)
@click.option(
    "--max-concurrency",
    default="50",
    show_default=True,
    metavar="N|P%",
    help="How many instances run it at once (Run Command's MaxConcurrency).",
)
@click.option(
    "--max-errors",
    default="0",
    show_default=True,
    metavar="N|P%",
    help="After this many failures, no more instances are sent it (MaxErrors).",
)
@click.option(
    "--timeout",
    "timeout_s",
    default=600,
    show_default=True,
    type=int,
    metavar="S",
    help="Seconds the command may run on each instance.",
)
@OUTPUT
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_command(
    obj: Context,
    selector: str,
    max_concurrency: str,
    max_errors: str,
    timeout_s: int,
    output: str,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND on every instance of a fleet through SSM Run Command (no SSH): deployer
    exec -- uname -a. The words are joined for the instance's shell, as ssh does. Each
    instance's exit status and output are printed; exit 1 names every instance that failed.
    Journalled (see `history`); takes no lock.
    """
    from deployer.ops.fleet_exec import exec_json, raise_if_failed, render, run_exec

    obj.output(output)
    engine = obj.engine(start_sandbox=False)
    result = ENDING.run(
        lambda: run_exec(engine, command, selector, max_concurrency, max_errors, timeout_s)
    )
    if output != "json":
        click.echo(render(result))
    ENDING.run(lambda: raise_if_failed(result))
    ENDING.emit(exec_json(result), "")


COMMANDS = [gc, unlock, destroy, infra, config_group, logs, exec_command]
