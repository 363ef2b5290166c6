"""How a command ends: the one place errors become exit codes, and every exit prints what it
must. Human text goes to stderr (or stdout for the result) as plain text: user input in a
message is never read as markup. With --output json, stdout holds exactly one JSON document
on every exit, failures included:

    {"ok": false, "exit_code": 2, "error": {"kind": "BadInput", "message": "..."}}
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from deployer.errors import (
    INTERRUPTED,
    DeployerError,
    ExitCode,
    NeedsHuman,
    PollTimeout,
    Unreachable,
)

T = TypeVar("T")


def _color(code: str, text: str) -> str:
    return f"\033[{code}m{text}\033[0m" if sys.stderr.isatty() else text


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Ending:
    """Where this command's output goes, and what the run has done so far."""

    def __init__(self) -> None:
        self.json = False
        self.changes_begun: Callable[[], bool] = lambda: False
        self.error_log: Path | None = None
        self.result_to_stderr = False  # `--events -`: stdout carries the events
        # The run's outputs (output.outputs.RunOutputs.end): the outcome event, the summary,
        # notifications. Called once, before the result is printed.
        self.on_end: Callable[[bool, int, dict[str, Any], str], None] | None = None

    def _end(self, ok: bool, code: int, data: dict[str, Any], reason: str = "") -> None:
        hook, self.on_end = self.on_end, None
        if hook is None:
            return
        try:
            hook(ok, code, data, reason)
        except Exception as exc:  # noqa: BLE001 - the outputs must never change the exit
            say(f"warning: the run's outputs failed: {type(exc).__name__}: {exc}")

    def emit(self, data: dict[str, Any], text: str) -> None:
        self._end(True, 0, data)
        if self.json:
            print(json.dumps({"ok": True, "exit_code": 0, **data}, indent=2, default=str))
        elif text:
            print(text, file=sys.stderr if self.result_to_stderr else sys.stdout)

    def fail(self, exc: DeployerError, **extra: Any) -> NoReturn:
        code = int(exc.exit_code)
        self._end(False, code, {}, exc.message)
        say(_color("1;31", "error: ") + exc.message)
        say(_color("2", f"exit {code}: {exc.exit_meaning}"))
        self._json_failure(code, type(exc).__name__, exc.message, {**exc.details, **extra})
        sys.exit(code)

    def interrupted(self) -> NoReturn:
        self._end(False, INTERRUPTED, {}, "interrupted by a signal")
        say(_color("33", "interrupted"))
        self._json_failure(INTERRUPTED, "Interrupted", "interrupted by a signal", {})
        sys.exit(INTERRUPTED)

    def _json_failure(self, code: int, kind: str, message: str, extra: dict[str, Any]) -> None:
        if self.json:
            error = {"kind": kind, "message": message, **extra}
            print(json.dumps({"ok": False, "exit_code": code, "error": error}, indent=2))

    def run(self, action: Callable[[], T]) -> T:
        """Run a use case; map whatever it raises to its documented exit code."""
        try:
            return action()
        except PollTimeout as exc:  # a wait on AWS that ran out: 4 or 5, had changes begun?
            self.fail(self._aws_failure(exc))
        except DeployerError as exc:
            self.fail(exc)
        except KeyboardInterrupt:
            self.interrupted()
        except Exception as exc:  # noqa: BLE001 - a bug must still end with a code, not a trace
            self.fail(self._aws_failure(exc) if _from_aws(exc) else self._internal(exc))

    def _aws_failure(self, exc: Exception) -> DeployerError:
        """An AWS error nothing mapped: exit 5 before any change, exit 4 after."""
        if self.changes_begun():
            return NeedsHuman(
                f"AWS: {exc}. Changes had begun; the journal records where this run stopped: "
                "run `deployer status`, then rerun the command (it converges) or "
                "`deployer abort`."
            )
        return Unreachable(f"AWS: {exc}. Nothing was changed.")

    def _internal(self, exc: Exception) -> DeployerError:
        where = ""
        if self.error_log is not None:
            try:
                self.error_log.parent.mkdir(parents=True, exist_ok=True)
                self.error_log.write_text("".join(traceback.format_exception(exc)))
                where = f" (the trace is in {self.error_log})"
            except OSError:
                where = ""
        return NeedsHuman(
            f"internal error: {type(exc).__name__}: {exc}{where}. Run `deployer status` to "
            "see the state; please report this."
        )


def _from_aws(exc: Exception) -> bool:
    """An error of botocore. Imported only here, on the way out: a command that never talks
    to AWS (`--help`, `schema`, `sandbox status`) never loads botocore.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, ClientError | BotoCoreError)


ENDING = Ending()


def exit_meanings() -> dict[int, str]:
    return {int(code): code.meaning for code in ExitCode}
