"""The CLI: parse -> wire -> call a use case -> render -> exit code. Nothing else lives here.

Human progress goes to stderr; the result goes to stdout, and with --output json stdout holds
exactly one JSON document on every exit (deployer.cli.outcome). Heavy modules are imported inside
the commands that need them, so `status` starts fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from deployer.cli.outcome import ENDING, say
from deployer.config.loading import LoadedConfig, json_schema, load_config
from deployer.errors import BadInput
from deployer.sandbox.layout import Layout

OUTPUT = click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON document on stdout, on every exit, for CI.",
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
REBAKE = click.option(
    "--rebake", is_flag=True, help="Bake a new image even if one with the same bake key exists."
)
STRATEGY = click.option(
    "--strategy",
    type=click.Choice(["all_at_once", "canary"]),
    help="Override deployer.yaml's strategy.kind for this run.",
)


EVENTS = click.option(
    "--events",
    "events_to",
    metavar="PATH|-",
    help="Write the run's events as JSON lines to PATH as they happen ('-': stdout, and the "
    "human output goes to stderr).",
)


SHORT_CREDENTIALS = click.option(
    "--allow-short-credentials",
    is_flag=True,
    help="Go on even if the AWS credentials expire before this run's worst case.",
)


REPLACE_FAILED = click.option(
    "--replace-failed",
    is_flag=True,
    help="Delete a network or service stack left in a failed state and create it again.",
)


class Context:
    def __init__(self, config_path: Path) -> None:
        from deployer.output.events import Events, new_run_id
        from deployer.output.outputs import RunOutputs

        self.config_path = config_path
        self.workdir = Path.cwd()
        self.strategy: str | None = None
        self.aws: Any = None  # the AwsContext of the engine, once made: did changes begin?
        self.events = Events(new_run_id())
        self.outputs = RunOutputs(self.events, self.workdir)
        self.allow_short_credentials = False
        self.replace_failed = False
        ENDING.changes_begun = lambda: bool(self.aws is not None and self.aws.changes_begun)
        ENDING.error_log = self.workdir / ".deployer" / "last-error.log"

    def output(self, mode: str) -> None:
        ENDING.json = mode == "json"

    def report(self, line: str) -> None:
        self.events.say(line)

    def start_run(
        self, command: str, version: str | None, events_to: str | None, output: str
    ) -> None:
        """A run command's outputs: its event sinks, and at every exit its outcome event,
        summary and notifications. run_started is emitted once the config loads.
        """
        from deployer.target import placement

        self.output(output)
        ENDING.run(lambda: self.outputs.open(command, events_to, output == "json"))
        ENDING.result_to_stderr = events_to == "-"
        ENDING.on_end = self.outputs.end
        loaded = ENDING.run(self.config)
        where = ENDING.run(lambda: placement(loaded).label)
        ENDING.run(lambda: self.outputs.started(loaded, version, where))

    def config(self) -> LoadedConfig:
        loaded = load_config(self.config_path)
        if self.strategy is None:
            return loaded
        strategy = loaded.spec.strategy.model_copy(update={"kind": self.strategy})
        return LoadedConfig(
            path=loaded.path, spec=loaded.spec.model_copy(update={"strategy": strategy})
        )

    def checked(self, version: str | None = None) -> LoadedConfig:
        """The config, the version and every local check (templates, playbook, artifact):
        bad input exits 2 here, before anything (the sandbox included) is started.
        """
        from deployer.core.names import Version
        from deployer.release.preflight import check_local

        if version is not None:
            ENDING.run(lambda: Version.parse(version))
        loaded = ENDING.run(self.config)
        ENDING.run(lambda: check_local(loaded, self.workdir, say))
        return loaded

    def refuse_if_locked(self) -> None:
        """Exit 3 at once if another run holds the lock: before the preflight, so that the
        losers of a race hear it in a moment. Starts nothing (no sandbox: no lock either).
        """
        from deployer.errors import Unreachable

        try:
            engine = self._make_engine(start_sandbox=False)
        except Unreachable:
            return
        ENDING.run(lambda: engine.lock.refuse_if_held(engine.stamp()))

    def engine(self, start_sandbox: bool = True) -> Any:
        return ENDING.run(lambda: self._make_engine(start_sandbox))

    def _make_engine(self, start_sandbox: bool) -> Any:
        from deployer.aws.poller import Poller
        from deployer.release.engine import Engine
        from deployer.target import open_target

        loaded = self.config()
        poller = Poller(report=self.report)
        runtime = open_target(loaded, self.workdir, poller, self.report, start_sandbox)
        self.aws = runtime.aws
        engine = Engine(loaded, runtime, poller, self.report, self.workdir, events=self.events)
        engine.allow_short_credentials = self.allow_short_credentials
        engine.replace_failed = self.replace_failed
        return engine


def record_data(record: Any) -> dict[str, Any]:
    from deployer.ops.operations import record_json

    return record_json(record)


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
@STRATEGY
@REBAKE
@WAIT
@SHORT_CREDENTIALS
@REPLACE_FAILED
@EVENTS
@OUTPUT
@click.pass_obj
def release(
    obj: Context,
    version: str,
    strategy: str | None,
    rebake: bool,
    wait_s: float | None,
    allow_short_credentials: bool,
    replace_failed: bool,
    events_to: str | None,
    output: str,
) -> None:
    """Bake (or reuse) VERSION's image, start its fleet, gate it, and move traffic to it."""
    from deployer.release.loop import Release

    obj.strategy = strategy
    obj.replace_failed = replace_failed
    obj.allow_short_credentials = allow_short_credentials
    obj.start_run("release", version, events_to, output)
    if wait_s is None:
        obj.refuse_if_locked()
    obj.checked(version)
    engine = obj.engine()
    result = ENDING.run(lambda: Release(engine).run(version, wait_s, rebake))
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
    live = "already live" if record.outcome.value == "noop" else "live"
    ENDING.emit(data, f"{record.version} is {live}: {result.url}")


@cli.command()
@click.argument("version")
@REBAKE
@WAIT
@SHORT_CREDENTIALS
@EVENTS
@OUTPUT
@click.pass_obj
def bake(
    obj: Context,
    version: str,
    rebake: bool,
    wait_s: float | None,
    allow_short_credentials: bool,
    events_to: str | None,
    output: str,
) -> None:
    """Bake (or reuse) VERSION's image without releasing it."""
    from deployer.release.baking import bake as bake_image

    obj.allow_short_credentials = allow_short_credentials
    obj.start_run("bake", version, events_to, output)
    obj.checked(version)
    engine = obj.engine()
    result = ENDING.run(lambda: bake_image(engine, version, wait_s, rebake))
    data = {
        "version": result.version,
        "digest": result.digest,
        "image_id": result.image_id,
        "reused": result.reused,
        "bake_key": result.bake_key,
        "images": result.images,
        "mutating_calls": result.mutating_calls,
    }
    verb = "reused" if result.reused else "baked"
    ENDING.emit(data, f"{result.version}: {verb} image {result.image_id}")


@cli.command()
@click.option("--to", "to_version", metavar="VERSION", help="The version to go back to.")
@click.option("--force", is_flag=True, help="Switch even to a fleet that is not healthy.")
@WAIT
@EVENTS
@OUTPUT
@click.pass_obj
def rollback(
    obj: Context,
    to_version: str | None,
    force: bool,
    wait_s: float | None,
    events_to: str | None,
    output: str,
) -> None:
    """Traffic back to the previous fleet: one listener change while it is warm."""
    from deployer.ops.rollback import rollback as roll_back

    obj.start_run("rollback", to_version, events_to, output)
    engine = obj.engine()
    done = ENDING.run(lambda: roll_back(engine, to_version, wait_s, force))
    data = {
        **(record_data(done.record) if done.record else {}),
        "changed": done.changed,
        "message": done.message,
        "switch_seconds": done.switch_seconds,
    }
    ENDING.emit(data, f"rollback: {done.message}")


@cli.command()
@WAIT
@EVENTS
@OUTPUT
@click.pass_obj
def abort(obj: Context, wait_s: float | None, events_to: str | None, output: str) -> None:
    """Roll the in-flight release back on purpose (traffic to where it was before it)."""
    from deployer.ops.rollback import abort as abort_release

    obj.start_run("abort", None, events_to, output)
    engine = obj.engine()
    done = ENDING.run(lambda: abort_release(engine, wait_s))
    data = {
        **(record_data(done.record) if done.record else {}),
        "changed": done.changed,
        "message": done.message,
    }
    ENDING.emit(data, f"abort: {done.message}")


@cli.command()
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


@cli.command()
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


@cli.command()
@click.argument("version")
@STRATEGY
@REBAKE
@OUTPUT
@click.pass_obj
def plan(obj: Context, version: str, strategy: str | None, rebake: bool, output: str) -> None:
    """What `release VERSION` would do now. Changes nothing."""
    from deployer.ops.operations import plan as plan_release

    obj.output(output)
    obj.strategy = strategy
    obj.checked(version)
    engine = obj.engine()
    data = ENDING.run(lambda: plan_release(engine, version, rebake))
    if data["noop"]:
        text = "\n".join([f"nothing to do: {data['reason']}", *infra_lines(data["infra"])])
    else:
        lines = [
            f"release {data['version']} ({data['digest'][:12]}) on {data['target']}: "
            f"{data['reason']}",
            *infra_lines(data["infra"]),
            "  image: "
            + (
                f"bake a new one ({', '.join(data['bake_changed'])} changed)"
                if data["bake"]
                else f"reuse {data['image']}"
            ),
            "  fleet: "
            + (f"reuse {data['reuse_fleet']}" if data["reuse_fleet"] else "a new one")
            + f" x{data['capacity']}",
            *[f"  {s['name']}, held {s['hold_seconds']}s" for s in data["steps"]],
            f"  watch {data['watch_seconds']}s" if data["watch_seconds"] else "",
            *[f"  retire {stack}" for stack in data["retire"]],
            "  predicted on AWS's clock, with steady traffic:",
            *[
                f"    {row['what']:<28} {minutes(row['seconds']):>7}  ({row['why']})"
                for row in data["timing"]
            ],
            f"    {'in all':<28} {minutes(data['predicted_seconds']):>7}",
        ]
        text = "\n".join(line for line in lines if line)
    ENDING.emit(data, text)


def minutes(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def infra_lines(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for row in rows:
        if row["action"] == "unchanged":
            continue
        lines.append(f"  {row['action']} stack {row['stack']}")
        lines += [f"    {c['action']:<8} {c['resource']} ({c['type']})" for c in row["changes"]]
        lines += [
            f"    parameter {p['name']}: {p['from']!r} -> {p['to']!r}" for p in row["parameters"]
        ]
    return lines


@cli.command()
@OUTPUT
@click.pass_obj
def status(obj: Context, output: str) -> None:
    """What is live, which fleets exist, the load balancer URL, and what to do if stuck."""
    from deployer.ops.operations import status as read_status

    obj.output(output)
    engine = obj.engine(start_sandbox=False)
    data = ENDING.run(lambda: read_status(engine))
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
    lines += [
        f"infra: {s['stack']} {s['status']}"
        for s in data["infra"]
        if not s["status"].endswith("_COMPLETE") or "ROLLBACK" in s["status"]
    ]
    lines += [f"warn: {warning}" for warning in data["warnings"]]
    if data["advice"]:
        lines.append(f"todo: {data['advice']}")
    ENDING.emit(data, "\n".join(lines))


@cli.command()
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
    rows = [
        (
            str(r["started_at"]),
            f"{r['started_at']}  {r['kind']:8} {r['version']:<12} {r['outcome']:<11} "
            f"{r['actor']}  {r['reason']}".rstrip(),
        )
        for r in records
    ] + [
        (
            str(x["started_at"]),
            f"{x['started_at']}  exec     {x['version']:<12} {x['outcome']:<11} "
            f"{x['actor']}  {' '.join(map(str, x['command']))}: {x['reason']}".rstrip(),
        )
        for x in execs
    ]
    lines = [text for _, text in sorted(rows, key=lambda row: row[0], reverse=True)][:limit]
    ENDING.emit({"releases": records, "execs": execs}, "\n".join(lines) or "no releases recorded")


@cli.command("logs")
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

        ENDING.run(lambda: fleet_logs.follow(engine, query, show))
        lines = shown
    else:
        lines = ENDING.run(lambda: fleet_logs.read(engine, query))
    data = {**query.to_json(), "lines": [line.to_json() for line in lines]}
    if follow and output != "json":
        ENDING.emit(data, "")
    else:
        ENDING.emit(data, "\n".join(line.text() for line in lines) or "no lines")


@cli.command("exec", context_settings={"ignore_unknown_options": True})
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


@cli.command()
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


@cli.command()
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


@cli.group()
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


@cli.command("check")
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


@cli.group("config")
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


@cli.command("schema")
def schema() -> None:
    """Print the JSON Schema of deployer.yaml."""
    click.echo(json.dumps(json_schema(), indent=2))


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
@OUTPUT
@click.pass_obj
def sandbox_up(obj: Context, profile: str | None, output: str) -> None:
    """Start the sandbox in the background (release does this itself)."""
    from deployer.sandbox import control

    obj.output(output)
    state, started = ENDING.run(lambda: control.up(Layout.for_workdir(obj.workdir), profile))
    data = {
        "started": started,
        "endpoint": state.endpoint,
        "profile": state.profile,
        "time_scale": state.time_scale,
    }
    ENDING.emit(
        data,
        f"sandbox {'started' if started else 'already running'} at {state.endpoint} "
        f"(profile {state.profile}, time scale {state.time_scale})",
    )


@sandbox.command("down")
@OUTPUT
@click.pass_obj
def sandbox_down(obj: Context, output: str) -> None:
    """Stop the sandbox and every process it started; its state is forgotten."""
    from deployer.sandbox import control

    obj.output(output)
    was_up = ENDING.run(lambda: control.down(Layout.for_workdir(obj.workdir)))
    ENDING.emit({"stopped": was_up}, "sandbox stopped" if was_up else "sandbox was not running")


@sandbox.command("status")
@OUTPUT
@click.pass_obj
def sandbox_status(obj: Context, output: str) -> None:
    """Whether the sandbox runs, where, and with which profile."""
    from deployer.sandbox import control

    obj.output(output)
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
    ENDING.emit(data, text)


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
