"""What a release run gives its caller: the record it ended with, the URL, the figures."""

from __future__ import annotations

from dataclasses import dataclass, field

from deployer.core.model import ReleaseRecord


@dataclass
class ReleaseResult:
    record: ReleaseRecord
    url: str
    reused_image: bool
    phase_seconds: dict[str, float] = field(default_factory=dict)
