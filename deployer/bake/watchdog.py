"""No ansible-playbook of a bake outlives the deployer that started it, and no private key of
a bake outlives it on disk.

ansible-runner starts ansible-playbook in a session of its own, so a SIGKILL of deployer
leaves it running (with the bake's private data dir, presigned URL included). Each bake gets a
watchdog: a tiny process in its own session that checks every half second whether deployer
is still there; once it is gone, the watchdog ends every process using the bake's directory
and removes the directory. The bake's access directory (its private key) has a watchdog of
its own. The next bake also removes directories whose owner is gone.

    python -m deployer.bake.watchdog OWNER_PID DIRECTORY
    python -m deployer.bake.watchdog OWNER_PID --group PGID

The second form guards a process group instead (a verify hook, deployer.release.verify): once the
owner is gone, the group is ended.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BAKE_DIR_PREFIX = "deployer-bake-"
ACCESS_DIR_PREFIX = "deployer-access-"  # the bake's private key and pinned host key
OWNER_FILE = "owner.pid"
TICK_S = 0.5


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (OSError, IndexError):
        return True


def processes_using(directory: Path) -> list[int]:
    """Pids whose command line names `directory` (ansible-playbook and its workers)."""
    needle = str(directory).encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def end_processes_using(directory: Path, grace_s: float = 3.0) -> None:
    """SIGTERM the process groups using `directory`, then SIGKILL what is left."""
    groups = set()
    for pid in processes_using(directory):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            groups.add(os.getpgid(pid))
    groups.discard(os.getpgid(0))
    for group in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in processes_using(directory)):
        time.sleep(0.1)
    for pid in processes_using(directory):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def watchdog_for(directory: Path) -> subprocess.Popen[bytes]:
    """Start the watchdog of a bake directory owned by this process."""
    (directory / OWNER_FILE).write_text(str(os.getpid()))
    remove_orphans()
    return subprocess.Popen(
        [sys.executable, "-m", "deployer.bake.watchdog", str(os.getpid()), str(directory)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def remove_orphans(root: Path | None = None) -> list[Path]:
    """Bake and access directories whose owner is gone (it was killed, and so was its
    watchdog): removed, with any process still using them.
    """
    removed = []
    base = Path(root or tempfile.gettempdir())
    for directory in [*base.glob(f"{BAKE_DIR_PREFIX}*"), *base.glob(f"{ACCESS_DIR_PREFIX}*")]:
        try:
            owner = int((directory / OWNER_FILE).read_text())
        except (OSError, ValueError):
            continue
        if not _alive(owner):
            end_processes_using(directory)
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory)
    return removed


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


KILLED_WAIT_S = 2.0  # for SIGKILLed processes to exit on a busy machine


def end_group(group: int, grace_s: float = 3.0) -> None:
    """SIGTERM a process group, then SIGKILL it if it is still there, and give the killed a
    moment to exit (a process dies when it is next scheduled).
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and group_alive(group):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
    deadline = time.monotonic() + KILLED_WAIT_S
    while time.monotonic() < deadline and group_alive(group):
        time.sleep(0.05)


def watchdog_for_group(group: int) -> subprocess.Popen[bytes]:
    """Start the watchdog of a process group this process started."""
    return subprocess.Popen(
        [sys.executable, "-m", "deployer.bake.watchdog", str(os.getpid()), "--group", str(group)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def watch_group(owner: int, group: int) -> None:
    while group_alive(group):
        if not _alive(owner):
            end_group(group)
            return
        time.sleep(TICK_S)


def watch(owner: int, directory: Path) -> None:
    while directory.exists():
        if not _alive(owner):
            end_processes_using(directory)
            shutil.rmtree(directory, ignore_errors=True)
            return
        time.sleep(TICK_S)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[2] == "--group":
        watch_group(int(sys.argv[1]), int(sys.argv[3]))
    else:
        watch(int(sys.argv[1]), Path(sys.argv[2]))
