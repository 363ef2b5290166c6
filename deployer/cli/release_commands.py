"""Commands that change what is live: release, bake, rollback, abort (each one a run, with its
events, outcome event and summary), and plan: what a release would do, changing nothing.
"""

from __future__ import annotations

from typing import Any

import click

from deployer.cli.context import Context
from deployer.cli.options import (
    DETACH,
    EVENTS,
    EXECUTOR,
    OUTPUT,
    REBAKE,
    REPLACE_FAILED,
    SHORT_CREDENTIALS,
    STRATEGY,
    WAIT,
)
from deployer.cli.outcome import ENDING
from deployer.cli.render import plan_text, record_data


@click.command()
@click.argument("version")
@STRATEGY
@EXECUTOR
@DETACH
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
    executor: str | None,
    detach: bool,
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
    obj.executor = executor
    obj.detach = detach
    obj.replace_failed = replace_failed
    obj.allow_short_credentials = allow_short_credentials
    obj.start_run("release", version, events_to, output)
    if wait_s is None:
        obj.refuse_if_locked()
    obj.checked(version)
    engine = obj.engine()
    result = ENDING.run(lambda: Release(engine).run(version, wait_s, rebake))
    _released(result)


def _released(result: Any) -> None:
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
        "execution": record.execution,
    }
    if record.outcome.value == "in_progress":  # --detach: it goes on in AWS
        message = f"{record.version} is being released in AWS (release {record.release_id})"
        ENDING.emit(data, f"{message}: `deployer follow {record.release_id}`")
        return
    live = "already live" if record.outcome.value == "noop" else "live"
    ENDING.emit(data, f"{record.version} is {live}: {result.url}")


@click.command()
@click.argument("release_id", required=False)
@EVENTS
@OUTPUT
@click.pass_obj
def follow(obj: Context, release_id: str | None, events_to: str | None, output: str) -> None:
    """Attach to a release that runs in AWS (executor stepfunctions) until it ends."""
    from deployer.release.attached import follow_release

    obj.start_run("follow", None, events_to, output)
    engine = obj.engine()
    _released(ENDING.run(lambda: follow_release(engine, release_id)))


@click.command()
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


@click.command()
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


@click.command()
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


@click.command()
@EVENTS
@OUTPUT
@click.pass_obj
def promote(obj: Context, events_to: str | None, output: str) -> None:
    """Let a release waiting in a pause (strategy.steps: [10, pause, 100]) go on."""
    from deployer.ops.promote import promote as promote_release

    obj.start_run("promote", None, events_to, output)
    engine = obj.engine()
    done = ENDING.run(lambda: promote_release(engine))
    data = {
        **(record_data(done.record) if done.record else {}),
        "changed": done.changed,
        "message": done.message,
    }
    ENDING.emit(data, f"promote: {done.message}")


@click.command()
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
    ENDING.emit(data, plan_text(data))


COMMANDS = [release, follow, promote, bake, rollback, abort, plan]
