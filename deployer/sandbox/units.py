"""What a sandbox host does as systemd and cloud-init would on EC2: a unit's output goes where
the unit says (`StandardOutput=append:PATH`), and cloud-init logs its first boot to
/var/log/cloud-init-output.log. The app's and the configure unit's output then land where the
CloudWatch agent's configuration says to look for them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from deployer.core.hostkeys import console_text

log = logging.getLogger("deployer.sandbox.units")

UNITS = Path("etc/systemd/system")
CONFIGURE_UNIT = "deployer-configure.service"
BOOT_VARS = Path("opt/deployer/configure/vars.json")
APP_ENV = Path("etc/deployer/app.env")


def app_unit(root: Path) -> str:
    """The app's unit, named after the app the bake recorded (`<app>.service`)."""
    try:
        name = json.loads((root / BOOT_VARS).read_text(encoding="utf-8")).get("app_name", "")
    except (OSError, ValueError):
        return ""
    return f"{name}.service" if name else ""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as systemd's EnvironmentFile reads them (double-quoted values)."""
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            value = value.strip()
            if value.startswith('"') and value.endswith('"') and len(value) > 1:
                try:
                    value = json.loads(value)
                except ValueError:
                    value = value[1:-1]
            values[key.strip()] = value
    return values


def configure_command(configure: Path, extra: dict[str, object]) -> list[str]:
    """How the image's deployer-configure unit runs configure.yml (its ExecStart), with this
    Python's ansible-playbook and `extra` variables after the image's own.
    """
    return [
        os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
        "--connection",
        "local",
        "--inventory",
        "localhost,",
        str(configure),
        "--extra-vars",
        f"@{configure.parent / 'vars.json'}",
        "--extra-vars",
        json.dumps(extra),
    ]


def environment_files(root: Path, unit: str) -> list[tuple[Path, bool]]:
    """The unit's `EnvironmentFile=` lines in order, as (path under the host's root, whether
    it may be missing: systemd's `-` prefix).
    """
    try:
        text = (root / UNITS / unit).read_text(encoding="utf-8") if unit else ""
    except OSError:
        return []
    found = []
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        if key == "EnvironmentFile" and value:
            optional = value.startswith("-")
            found.append((root / value.lstrip("-").strip().lstrip("/"), optional))
    return found


def app_environment(root: Path) -> dict[str, str]:
    """The app's environment as its unit gives it: each EnvironmentFile in order, a later one
    overriding an earlier one (the release's VERSION comes from boot.env). Without a unit
    naming any, /etc/deployer/app.env. Empty when a file the unit requires is missing
    (systemd would not start the app).
    """
    files = environment_files(root, app_unit(root)) or [(root / APP_ENV, False)]
    values: dict[str, str] = {}
    for path, optional in files:
        if path.is_file():
            values.update(read_env_file(path))
        elif not optional:
            return {}
    return values


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


def output_path(root: Path, unit: str, fallback: Path) -> Path | None:
    """Where a unit's output goes: the file its unit appends to (None: systemd refuses to
    start it, that file's directory is missing), else `fallback` (the host's own log).
    """
    path = output_of(root, unit)
    if path is None:
        return fallback
    if not path.parent.is_dir():
        log.warning("%s: the directory of %s is missing", unit, path)
        return None
    return path


CLOUD_INIT_OUTPUT = Path("var/log/cloud-init-output.log")


def cloud_init_output(root: Path, host_keys: Sequence[str]) -> None:
    """What cloud-init writes to its output log at first boot: the host keys, then that it
    finished.
    """
    path = root / CLOUD_INIT_OUTPUT
    path.parent.mkdir(parents=True, exist_ok=True)
    when = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    with open(path, "a", encoding="utf-8") as out:
        out.write(
            f"Cloud-init v. sandbox running 'modules:final' at {when}.\n"
            + console_text(host_keys)
            + f"Cloud-init v. sandbox finished at {when}. Datasource DataSourceEc2.\n"
        )
