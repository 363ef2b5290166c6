"""One exception tree; each kind knows its exit code.

    DeployerError               (exit 1 unless a subclass says otherwise)
    ├── ReleaseFailed       1   a gate, the bake or a fleet failed; traffic is on the previous fleet
    │   ├── GateFailed      1   names the gate, the observation and the step
    │   ├── BakeFailed      1   the playbook or the builder failed; nothing was released
    │   └── CopyFailed      1   an image copy to another region failed
    ├── ExecFailed          1   `deployer exec` failed on an instance; names each one
    ├── BadInput            2   config, version, template, playbook, argument; nothing changed
    │   ├── ConfigError     2   names the file, the field and the reason
    │   └── NothingToRollBackTo 2  no warm fleet and no recorded image of the version asked
    ├── LockHeld            3   another release holds the lock
    │   └── LeaseLost       3   our lease expired and another run took the lock: we stop
    ├── NeedsHuman          4   a rollback or cleanup step failed; the journal says what to do
    │   ├── StackFailed     4   a stack did not reach its goal; names the failed resource
    │   └── PollTimeout     4   waited past a deadline (5 when no change had begun: the CLI)
    └── Unreachable         5   AWS, credentials or the endpoint failed before any change
    (KeyboardInterrupt, SIGINT, SIGTERM)  130  traffic put back, then stopped

Library errors (botocore, ansible-runner, pydantic) are mapped to these at the boundary
(`deployer.aws.session`, `deployer.bake.runner`, `deployer.config.loading`), never deeper.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

ROLLED_BACK = (
    "release failed its gates and was rolled back cleanly; traffic is on the previous fleet"
)
EXEC_FAILED = "the command failed on an instance"


class ExitCode(IntEnum):
    """Each exit code with what it means (the README's exit-code table) and, in a word or two,
    the outcome of a run that ends with it (the outcome event, summaries, notifications).
    """

    meaning: str
    outcome: str

    def __new__(cls, code: int, outcome: str, meaning: str) -> ExitCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.outcome = outcome
        member.meaning = meaning
        return member

    OK = 0, "done", "done: released or rolled back as asked"
    RELEASE_FAILED = (1, "failed, rolled back", f"{ROLLED_BACK} (`exec`: {EXEC_FAILED})")
    BAD_INPUT = (
        2,
        "bad input",
        "bad input (config, version, template, playbook): nothing was changed",
    )
    LOCK_HELD = 3, "locked", "another release holds the lock"
    NEEDS_HUMAN = (
        4,
        "needs a human",
        "needs a human: a rollback or cleanup step failed; state is journalled, "
        "and `deployer status` says what to do",
    )
    UNREACHABLE = (
        5,
        "unreachable",
        "AWS/credentials/endpoint unreachable, a permission or an EC2 quota missing, or the "
        "artifact bucket's name held by another account, before any change",
    )
    INTERRUPTED = (
        130,
        "interrupted",
        "interrupted (Ctrl-C, a cancelled CI job): traffic was put back, then the run stopped",
    )


# Ctrl-C or SIGTERM, after the cleanup (the shell's 128 + SIGINT).
INTERRUPTED = ExitCode.INTERRUPTED


def outcome_of_exit(code: int) -> str:
    """A failed run's outcome, in a word or two, from its exit code."""
    return next((member.outcome for member in ExitCode if member == code), "failed")


class DeployerError(Exception):
    exit_code: ExitCode = ExitCode.RELEASE_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        # More to say with --output json, beside the message (in the document's `error`).
        self.details: dict[str, Any] = {}

    @property
    def exit_meaning(self) -> str:
        """The exit code's meaning for this failure (the `exit N: ...` line)."""
        return ROLLED_BACK if self.exit_code is ExitCode.RELEASE_FAILED else self.exit_code.meaning


class ReleaseFailed(DeployerError):
    exit_code = ExitCode.RELEASE_FAILED


class GateFailed(ReleaseFailed):
    def __init__(
        self, gate: str, observation: str, step: str, evidence: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"gate '{gate}' failed at step '{step}': {observation}")
        self.gate = gate
        self.observation = observation
        self.step = step
        self.evidence = evidence or {}
        self.details = {"gate": gate, "step": step, "evidence": self.evidence}


class BakeFailed(ReleaseFailed):
    pass


class CopyFailed(ReleaseFailed):
    pass


class ExecFailed(DeployerError):
    """`deployer exec`: the command failed (or did not run) on some instance."""

    exit_code = ExitCode.RELEASE_FAILED

    @property
    def exit_meaning(self) -> str:
        return f"{EXEC_FAILED}; nothing else was changed"


class BadInput(DeployerError):
    exit_code = ExitCode.BAD_INPUT


class ConfigError(BadInput):
    def __init__(self, file: str, field: str, reason: str) -> None:
        where = f"{file}: {field}" if field else file
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.field = field
        self.reason = reason


class NothingToRollBackTo(BadInput):
    pass


class LockHeld(DeployerError):
    exit_code = ExitCode.LOCK_HELD


class LeaseLost(LockHeld):
    """Our lease expired and another run took the lock: we must stop acting."""


class NeedsHuman(DeployerError):
    exit_code = ExitCode.NEEDS_HUMAN


class StackFailed(NeedsHuman):
    """A stack did not reach its goal. Raised by the CloudFormation adapter; a use case that
    can say more (a fleet stack: the release failed before traffic moved) re-raises it.
    """

    def __init__(self, stack: str, status: str, reason: str) -> None:
        super().__init__(f"stack {stack} is {status}: {reason}")
        self.stack = stack
        self.status = status
        self.reason = reason


class Unreachable(DeployerError):
    exit_code = ExitCode.UNREACHABLE


class PollTimeout(NeedsHuman):
    """Waited past a deadline for AWS to reach a state. Exit 4 once changes began; the CLI
    says 5 when none had (deployer.cli.outcome).
    """

    def __init__(self, what: str, waited: float, last_status: str) -> None:
        super().__init__(
            f"gave up waiting for {what} after {waited:.0f}s; last seen: {last_status}"
        )
        self.what = what
        self.waited = waited
        self.last_status = last_status
