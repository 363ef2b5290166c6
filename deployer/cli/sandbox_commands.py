"""The embedded sandbox: start it, stop it, ask how it is."""

from __future__ import annotations

import click

from deployer.cli.context import Context
from deployer.cli.options import OUTPUT
from deployer.cli.outcome import ENDING
from deployer.sandbox.layout import Layout


@click.group()
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


COMMANDS = [sandbox]
