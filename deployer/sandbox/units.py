"""What a sandbox host reads from the image's systemd units, as systemd would on EC2: where a
unit's output goes (`StandardOutput=append:PATH`). The app's and the configure unit's output
then land where the CloudWatch agent's configuration says to look for them.
"""

from __future__ import annotations

import json
from pathlib import Path

UNITS = Path("etc/systemd/system")
CONFIGURE_UNIT = "deployer-configure.service"
BOOT_VARS = Path("opt/deployer/configure/vars.json")


def app_unit(root: Path) -> str:
    """The app's unit, named after the app the bake recorded (`<app>.service`)."""
    try:
        name = json.loads((root / BOOT_VARS).read_text(encoding="utf-8")).get("app_name", "")
    except (OSError, ValueError):
        return ""
    return f"{name}.service" if name else ""


def output_of(root: Path, unit: str) -> Path | None:
    """Where `unit` appends its standard output (under the host's root), or None when the unit
    does not exist or sends its output to the journal.
    """
    if not unit:
        return None
    try:
        text = (root / UNITS / unit).read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        if key == "StandardOutput" and value.startswith(("append:", "file:")):
            path = value.partition(":")[2].strip()
            if path.startswith("/"):
                return root / path.lstrip("/")
    return None
