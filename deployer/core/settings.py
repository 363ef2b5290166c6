"""The settings' part of a release's identity. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol


class Versioned(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def secure(self) -> bool: ...

    @property
    def version(self) -> int: ...


def settings_digest(settings: Sequence[Versioned]) -> str:
    """Names, types and versions: what changed, never what the values are ("" for none)."""
    if not settings:
        return ""
    blob = "\n".join(f"{s.name}\t{'S' if s.secure else 's'}\t{s.version}" for s in settings)
    return hashlib.sha256(blob.encode()).hexdigest()
