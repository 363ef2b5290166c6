"""A run's outputs, all fed by its one event stream (deployer.output.events):

- human progress on stderr: a live Rich view on a terminal, timestamped lines elsewhere;
- `--events PATH|-`: JSON lines as things happen (`-`: stdout, and the human output, result
  line included, goes to stderr);
- the record kept for `deployer report`: `.deployer/events/<run>.jsonl`;
- at the end: the outcome event, the phase table, GitHub's step summary (when
  GITHUB_STEP_SUMMARY is set) and the notifications of `notify:`.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import IO, Any

from deployer.errors import BadInput, outcome_of_exit
from deployer.output.events import Event, Events, JsonLines

KEEP_RECORDS = 100


def events_dir(workdir: Path) -> Path:
    return workdir / ".deployer" / "events"


class RunOutputs:
    def __init__(self, events: Events, workdir: Path, stderr: IO[str] | None = None) -> None:
        self.events = events
        self.workdir = workdir
        self.stderr = stderr or sys.stderr
        self.text_mode = True
        self.command = ""
        self._files: list[IO[str]] = []
        self._live: Any = None
        self._notifier: Any = None
        self._ended = False
        self.record_path: Path | None = None
        self.events.subscribe(self._human_sink())

    def _human_sink(self) -> Any:
        if self.stderr.isatty() and os.environ.get("TERM") != "dumb":
            from rich.console import Console

            from deployer.output.live import LiveProgress

            self._live = LiveProgress(Console(file=self.stderr))
            return self._live
        from deployer.output.plain import PlainProgress

        return PlainProgress(self.stderr)

    # ---- the start ---------------------------------------------------------------------

    def open(self, command: str, events_to: str | None, json_output: bool) -> None:
        """The sinks of a run command. `events_to` is a path, '-' (stdout) or None."""
        self.command = command
        self.text_mode = not json_output
        if events_to == "-" and json_output:
            raise BadInput("--events - and --output json both want stdout: give --events a PATH")
        if events_to == "-":
            self.events.subscribe(JsonLines(sys.stdout))
        elif events_to:
            self._subscribe_file(Path(events_to), f"--events {events_to}")
        directory = events_dir(self.workdir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            _prune(directory, KEEP_RECORDS - 1)
            self.record_path = directory / f"{self.events.run_id}.jsonl"
            self._subscribe_file(self.record_path, str(self.record_path))
        except (OSError, BadInput) as exc:  # the record is a convenience; the run goes on
            self.events.say(f"warning: events are not recorded for `deployer report`: {exc}")

    def _subscribe_file(self, path: Path, name: str) -> None:
        try:
            stream = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"{name}: cannot write there: {exc.strerror}") from None
        self._files.append(stream)
        self.events.subscribe(JsonLines(stream))

    def started(self, loaded: Any, version: str | None, target: str) -> None:
        """run_started, once the config is known; notifications subscribe here. A notify
        URL Apprise cannot use is a ConfigError (exit 2), raised before run_started.
        """
        from deployer.release.engine import actor_from_env

        spec = loaded.spec
        if spec.notify:
            from deployer.output.notify import Notifier, refuse_unknown_urls

            refuse_unknown_urls(spec.notify, str(loaded.path))
            self._notifier = Notifier(spec.notify, self._say_late)
            self.events.subscribe(self._notifier)
        self.events.emit(
            "run_started",
            command=self.command,
            version=version,
            actor=str(actor_from_env()),
            app=spec.app,
            environment=spec.environment,
            target=target,
            config=str(loaded.path),
            config_digest=hashlib.sha256(loaded.path.read_bytes()).hexdigest(),
        )

    def _say_late(self, text: str) -> None:
        """After the outcome, the stream is closed: late lines go to stderr alone."""
        if self._ended:
            self.stderr.write(f"· {text}\n")
        else:
            self.events.say(text)

    # ---- the end -----------------------------------------------------------------------

    def end(self, ok: bool, code: int, data: dict[str, Any], reason: str = "") -> None:
        """The outcome event, then what is drawn from the whole stream. Runs once."""
        if self._ended:
            return
        self._ended = True
        history = self.events.history
        release = next((e for e in reversed(history) if e["type"] == "release"), None)
        run = next((e for e in history if e["type"] == "run_started"), None)
        outcome = self.events.emit(
            "outcome",
            ok=ok,
            exit_code=code,
            outcome=_outcome(self.command, ok, code, data),
            version=data.get("version") or (release or run or {}).get("version"),
            release_id=data.get("release_id") or (release or {}).get("release_id"),
            url=data.get("url"),
            reason=reason or data.get("message") or "",
        )
        if self._live is not None:
            self._live.stop()
        if self.text_mode and any(e["type"] == "phase_finished" for e in history):
            self._print_table(outcome)
        self._step_summary()
        self._step_outputs(outcome)
        if self._notifier is not None:
            self._notifier.wait()
        for stream in self._files:
            stream.close()

    def _print_table(self, outcome: Event) -> None:
        from rich.console import Console

        from deployer.output.live import end_table

        Console(file=self.stderr).print(end_table(self.events.history, outcome))

    def _step_summary(self) -> None:
        if not os.environ.get("GITHUB_STEP_SUMMARY"):
            return
        from deployer.output.summary import markdown

        text = markdown(self.events.history)
        if text:
            _append("GITHUB_STEP_SUMMARY", text + "\n", self.stderr)

    def _step_outputs(self, outcome: Event) -> None:
        """GitHub step outputs (GITHUB_OUTPUT): url, outcome, exit_code, version, release_id."""
        keys = ("url", "outcome", "exit_code", "version", "release_id")
        values = {k: "" if outcome.get(k) is None else str(outcome[k]) for k in keys}
        lines = "".join(f"{k}={(v.splitlines() or [''])[0]}\n" for k, v in values.items())
        _append("GITHUB_OUTPUT", lines, self.stderr)


def _append(variable: str, text: str, stderr: IO[str]) -> None:
    target = os.environ.get(variable)
    if not target:
        return
    try:
        with open(target, "a", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        stderr.write(f"warning: {variable} {target}: {exc.strerror}\n")


def _outcome(command: str, ok: bool, code: int, data: dict[str, Any]) -> str:
    if not ok:
        return outcome_of_exit(code)
    if "outcome" in data:
        return str(data["outcome"])
    if "changed" in data:
        return "changed" if data["changed"] else "nothing to do"
    if "reused" in data:
        return "reused" if data["reused"] else "baked"
    return "done"


def _prune(directory: Path, keep: int) -> None:
    """Keep the newest `keep` records."""
    records = sorted(directory.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in records[keep:]:
        old.unlink(missing_ok=True)
