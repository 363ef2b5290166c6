"""What every section of deployer.yaml shares: strict models, name and CIDR patterns, durations."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

# Lower-case words joined by single hyphens: names of stacks and target groups derive from it,
# and ELBv2 refuses "--" and a trailing "-" in a target group's name.
NAME_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
NAME_MAX = 20
CIDR_PATTERN = r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}/\d{1,2}$"
REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d$"
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def parse_duration(value: int | str) -> int:
    """Seconds from 3600, "3600", "90m", "1h" or "2d"."""
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    match = _DURATION.match(value.strip())
    if not match:
        raise ValueError(f"'{value}' is not a duration like 3600, 90m, 1h or 2d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
