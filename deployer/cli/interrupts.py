"""Ctrl-C and a cancelled CI job: the first signal starts the cleanup, the next ones must not
cut it short.

GitHub Actions cancels a run with SIGINT, waits 7.5 s, sends SIGTERM, waits 2.5 s, then kills
the process tree. The first SIGINT or SIGTERM raises KeyboardInterrupt where the run is, and
the cleanup it leads to (traffic back, the journal told, the builder ended) runs. A second
signal must not raise inside that cleanup, or the restore would stop halfway: it is noted
(`hurrying`: waits that are not needed for traffic give up) and the cleanup goes on. A third
one, from a person pressing Ctrl-C again, ends the process at once (exit 130).
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

from deployer.errors import INTERRUPTED


class Interrupts:
    def __init__(self) -> None:
        self.received = 0

    @property
    def hurrying(self) -> bool:
        """A second signal came: give up what traffic does not need (a builder's wait)."""
        return self.received > 1

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received += 1
        if self.received == 1:
            raise KeyboardInterrupt(f"signal {signum}")
        if self.received == 2:
            print(
                f"interrupted again (signal {signum}): still putting things back; "
                "signal once more to stop at once",
                file=sys.stderr,
                flush=True,
            )
            return
        os._exit(INTERRUPTED)

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.handle)


INTERRUPTS = Interrupts()
