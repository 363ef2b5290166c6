"""The options several commands share, defined once so that they read and behave alike."""

from __future__ import annotations

import click

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
EXECUTOR = click.option(
    "--executor",
    type=click.Choice(["local", "stepfunctions"]),
    help="Override deployer.yaml's executor: who runs the traffic steps, gates and restore.",
)
DETACH = click.option(
    "--detach",
    is_flag=True,
    help="With executor stepfunctions: return once the execution has started.",
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
