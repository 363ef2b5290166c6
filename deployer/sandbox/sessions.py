"""STS's session limit, which moto skips: AssumeRole and AssumeRoleWithWebIdentity refuse a
DurationSeconds above the role's MaxSessionDuration (ValidationError), as a GitHub workflow
asking for more than the deploy role allows would be refused. Roles moto does not know (in
another account, say) are left as moto answers them.
"""

from __future__ import annotations

from typing import Any

from moto.iam.models import iam_backends
from moto.sts.exceptions import STSClientError
from moto.sts.models import STSBackend

from deployer.sandbox.patching import Patches


class _TooLong(STSClientError):
    def __init__(self) -> None:
        super().__init__(
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        )


def _assume_role(self: STSBackend, *args: Any, **kwargs: Any) -> Any:
    role_arn = str(kwargs.get("role_arn", ""))
    duration = int(kwargs.get("duration") or 3600)
    account = role_arn.split(":")[4] if role_arn.count(":") >= 5 else ""
    try:
        role = iam_backends[account]["global"].get_role_by_arn(role_arn) if account else None
    except Exception:  # noqa: BLE001 - a role moto does not hold: as moto answers
        role = None
    if role is not None and duration > int(role.max_session_duration or 3600):
        raise _TooLong()
    return PATCHES.original("assume_role")(self, *args, **kwargs)


PATCHES = Patches()
PATCHES.add("assume_role", STSBackend, "assume_role", _assume_role)
apply = PATCHES.apply
restore = PATCHES.restore


def check_internals() -> list[str]:
    """What moved in moto that this rule relies on (empty when nothing did)."""
    import inspect

    moved = []
    params = list(inspect.signature(PATCHES.original("assume_role")).parameters)
    if not {"role_arn", "duration"} <= set(params):
        moved.append(f"STSBackend.assume_role{params}")
    if "assume_role" not in STSBackend.assume_role_with_web_identity.__code__.co_names:
        moved.append("assume_role_with_web_identity no longer calls assume_role")
    return moved
