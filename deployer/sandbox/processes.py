"""Stopping what the sandbox started: a whole process group, politely and then not.
Apart from the hosts (deployer.sandbox.hosts) so that `sandbox down` and `status` need none of
what running hosts needs (yaml, key generation).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time


def stop_process_group(
    pid: int, grace_s: float = 3.0, child: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM the process group, then SIGKILL what is still there after the grace period.

    `child` is our own Popen when we started it: it must be reaped, or its zombie keeps the
    group alive for the whole grace period.
    """
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if child is not None and child.poll() is None:
            time.sleep(0.05)
            continue
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    if child is not None:
        child.wait(timeout=5)
