"""Notifications, as CodeDeploy sends them: a release's start, success and failure, and every
rollback, to the Apprise URLs of `notify:` (Slack, Teams, SNS, plain JSON webhooks and more).

A notification is sent in the background and never fails or stalls a run: a failure is
reported (the URL shown with its secrets masked, as Apprise prints it) and the run goes on.
An entry `env:NAME` reads the URL from the environment (a CI secret), not from the file.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from deployer.config.observability import notify_entry_problem
from deployer.errors import ConfigError
from deployer.output.events import Event

SEND_TIMEOUT_S = 10.0
STARTING_COMMANDS = ("release", "rollback", "abort")


def _quiet() -> None:
    """Apprise logs its failures with the URL's host; we report them ourselves, masked."""
    logger = logging.getLogger("apprise")
    if not logger.handlers:  # once: every notification thread calls this
        logger.addHandler(logging.NullHandler())
    logger.propagate = False


def resolve(entry: str) -> str:
    return os.environ.get(entry[4:], "") if entry.startswith("env:") else entry


def masked(url: str) -> str:
    """The URL as Apprise prints it with privacy on: tokens and passwords masked."""
    import apprise

    plugin = apprise.Apprise.instantiate(url)
    if plugin:
        return str(plugin.url(privacy=True))
    return url.split("://", 1)[0] + "://…"


def invalid(entry: str) -> str:
    """Why an entry is not a usable Apprise URL, or '' (an env: entry is checked at run time)."""
    why = notify_entry_problem(entry)  # its form, as the config checked it
    if why or entry.startswith("env:"):
        return why
    import apprise

    _quiet()
    if not apprise.Apprise.instantiate(entry):
        return f"Apprise does not know the scheme '{entry.split('://', 1)[0]}'"
    return ""


def refuse_unknown_urls(entries: Sequence[str], config_file: str) -> None:
    """A ConfigError naming the config file and `notify` for the first entry Apprise cannot
    use (exit 2, before anything starts). The URL itself is not echoed: it may hold a token.
    """
    for index, entry in enumerate(entries):
        why = invalid(entry)
        if why:
            raise ConfigError(config_file, "notify", f"entry {index}: {why}")


class Notifier:
    """An event sink: sends run_started (of a release, rollback or abort) and outcome."""

    def __init__(self, entries: Sequence[str], say: Callable[[str], None]) -> None:
        self._entries = list(entries)
        self._say = say
        self._threads: list[threading.Thread] = []
        self._started: Event | None = None
        self.sent: list[str] = []  # "start", "success", ... one per notification that went out

    def __call__(self, event: Event) -> None:
        if event["type"] == "run_started" and event.get("command") in STARTING_COMMANDS:
            self._started = event
            self._send("start", *self._starting(event))
        elif event["type"] == "outcome" and self._started is not None:
            self._send(*self._ending(self._started, event))

    def _starting(self, run: Event) -> tuple[str, str]:
        what = f"{run['command']} {run.get('version') or ''}".strip()
        title = f"deployer: {what} of {run['app']}/{run['environment']} started"
        return title, f"{title} by {run['actor']} ({run['target']})"

    def _ending(self, run: Event, end: Event) -> tuple[str, str, str]:
        where = f"{run['app']}/{run['environment']}"
        version = end.get("version") or run.get("version") or ""
        if run["command"] in ("rollback", "abort"):
            kind = "rollback"
        elif end["ok"]:
            kind = "success"
        elif end["exit_code"] == 1:
            kind = "rollback"  # the release failed a gate and traffic went back
        else:
            kind = "failure"
        verdict = "succeeded" if end["ok"] else f"failed (exit {end['exit_code']})"
        title = f"deployer: {run['command']} {version} of {where} {verdict}"
        lines = [
            title,
            f"who: {run['actor']}",
            f"outcome: {end.get('outcome') or verdict}",
            *([f"reason: {end['reason']}"] if end.get("reason") else []),
            *([f"url: {end['url']}"] if end.get("url") else []),
        ]
        return kind, title, "\n".join(lines)

    def _send(self, kind: str, title: str, body: str) -> None:
        for entry in self._entries:
            thread = threading.Thread(
                target=self._deliver, args=(kind, entry, title, body), daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _deliver(self, kind: str, entry: str, title: str, body: str) -> None:
        import apprise

        _quiet()
        url = resolve(entry)
        try:
            sender: Any = apprise.Apprise()
            if not url or not sender.add(url):
                self._say(f"notify: {entry if not url else masked(url)} is not usable; skipped")
                return
            failed = self._failure_type(kind, apprise)
            if sender.notify(body=body, title=title, notify_type=failed, timeout=SEND_TIMEOUT_S):
                self.sent.append(kind)
            else:
                self._say(f"notify: sending the {kind} notification to {masked(url)} failed")
        except Exception as exc:  # noqa: BLE001 - a notification must never fail a run
            self._say(f"notify: {masked(url)}: {type(exc).__name__}")

    @staticmethod
    def _failure_type(kind: str, apprise: Any) -> Any:
        return {
            "failure": apprise.NotifyType.FAILURE,
            "rollback": apprise.NotifyType.WARNING,
            "success": apprise.NotifyType.SUCCESS,
        }.get(kind, apprise.NotifyType.INFO)

    def wait(self, timeout_s: float = SEND_TIMEOUT_S + 5) -> None:
        """Give the notifications in flight a bounded time to go out."""
        ends = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, ends - time.monotonic()))
