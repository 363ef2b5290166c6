"""What cloud-init does with an instance's user data that is a shell script: at first boot,
it runs it once, as root, and logs its output to /var/log/cloud-init-output.log. A script
that does not parse fails there, and what it meant to do never happens (the builder's
shutdown timer, for one).

The sandbox runs the script the same way in the host's directory, with a `shutdown` of its own
first on the PATH: `shutdown -h +N` (or `now`) asks the sandbox to end the instance after N
minutes (scaled); `shutdown -c` cancels. The instance then stops, or terminates when it was
launched with InstanceInitiatedShutdownBehavior=terminate (state reason
Client.InstanceInitiatedShutdown), as on EC2. Nothing else on this machine is shut down.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("deployer.sandbox.cloudinit")
SCRIPT = Path("var/lib/cloud/instance/scripts/part-001")
OUTPUT_LOG = Path("var/log/cloud-init-output.log")
SHUTDOWN_FILE = "shutdown.json"  # in the host's directory: when and how it ends
TIME_SCALE_ENV = "DEPLOYER_SANDBOX_TIME_SCALE"

# `shutdown [OPTIONS] [TIME] [WALL...]`, as systemd's: TIME is now, +MINUTES or HH:MM.
SHUTDOWN_SHIM = """\
import json, os, sys, time

path = os.environ["DEPLOYER_SANDBOX_SHUTDOWN_FILE"]
scale = float(os.environ.get("DEPLOYER_SANDBOX_TIME_SCALE") or 1.0)
args = sys.argv[1:]
if "-c" in args:
    if os.path.exists(path):
        os.remove(path)
    sys.exit(0)
action = "reboot" if "-r" in args or "--reboot" in args else "poweroff"
if "-H" in args or "--halt" in args:
    action = "halt"
when = next((a for a in args if not a.startswith("-")), "+1")
if when == "now":
    minutes = 0.0
elif when.startswith("+") and when[1:].isdigit():
    minutes = float(when[1:])
elif len(when) == 5 and when[2] == ":" and (when[:2] + when[3:]).isdigit():
    now = time.localtime()
    minutes = (int(when[:2]) * 60 + int(when[3:]) - now.tm_hour * 60 - now.tm_min) % 1440
else:
    sys.exit(f"shutdown: failed to parse time specification: {when}")
at = time.time() + minutes * 60 * scale
with open(path, "w") as out:
    json.dump({"at": at, "action": action, "minutes": minutes}, out)
print(f"Shutdown scheduled in {minutes:g} min (sandbox: {minutes * 60 * scale:.1f} s)")
"""


SHIMS = ("shutdown", "poweroff", "halt", "reboot")


def install_shim(bin_dir: Path) -> Path:
    """The sandbox's `shutdown` (and poweroff, halt, reboot), first on the user data's PATH;
    returns the directory, absolute (the script runs in the host's root).
    """
    bin_dir = bin_dir.resolve()
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in SHIMS:
        shim = bin_dir / name
        body = SHUTDOWN_SHIM if name == "shutdown" else _ALIAS.format(name=name)
        shim.write_text(f"#!{sys.executable}\n{body}")
        shim.chmod(0o755)
    return bin_dir


# poweroff, halt and reboot are `shutdown now`, with their own action.
_ALIAS = """\
import os, sys
flag = {{"poweroff": "-P", "halt": "-H", "reboot": "-r"}}["{name}"]
os.execv(os.path.join(os.path.dirname(__file__), "shutdown"), ["shutdown", flag, "now"])
"""


def search_path(bin_dir: Path) -> str:
    """The shims first, then the ordinary tools; never the machine's own sbin directories,
    where the real shutdown lives.
    """
    return os.pathsep.join([str(bin_dir), "/usr/local/bin", "/usr/bin", "/bin"])


def is_script(user_data: str) -> bool:
    """cloud-init runs user data beginning with #! as a script (cloud-config is data)."""
    return user_data.startswith("#!")


def run_user_data(
    root: Path, host_dir: Path, user_data: str, bin_dir: Path, time_scale: float
) -> threading.Thread | None:
    """Run a user-data script once, in the background (cloud-init's final stage does not hold
    the boot up), its output in the host's /var/log/cloud-init-output.log.
    """
    if not is_script(user_data):
        return None
    path = search_path(bin_dir)
    if shutil.which("shutdown", path=path) != str(bin_dir / "shutdown"):
        log.warning("%s: the sandbox's shutdown is not first on PATH; user data not run", root)
        return None
    script = root / SCRIPT
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(user_data)
    script.chmod(stat.S_IRWXU)
    output = root / OUTPUT_LOG
    output.parent.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": path,
        "HOME": str(root / "root"),
        "USER": "root",
        "DEPLOYER_SANDBOX_SHUTDOWN_FILE": str(host_dir / SHUTDOWN_FILE),
        TIME_SCALE_ENV: str(time_scale),
    }

    def run() -> None:
        with open(output, "ab") as out:
            done = subprocess.run(
                [str(script)],
                cwd=root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
                timeout=600,
            )
        if done.returncode != 0:
            log.warning(
                "%s: the user data script failed (exit %s); see %s",
                host_dir.name,
                done.returncode,
                output,
            )

    thread = threading.Thread(target=run, name=f"user-data-{host_dir.name}", daemon=True)
    thread.start()
    return thread


def shutdown_due(host_dir: Path, now: float | None = None) -> str:
    """The action (poweroff, halt) a host's scheduled shutdown asks for, once due; else ''."""
    path = host_dir / SHUTDOWN_FILE
    try:
        planned = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return ""
    if float(planned.get("at", 0)) > (time.time() if now is None else now):
        return ""
    path.unlink(missing_ok=True)
    return "" if planned.get("action") == "reboot" else str(planned.get("action", "poweroff"))
