"""Run `deployer release VERSION` exactly as the CLI wires it, and SIGKILL this process at a
phase boundary (right after the journal records it), as a CI runner that dies would.

    python -m tests.e2e.kill_at PHASE[:done] VERSION
"""

import os
import signal
import sys
from pathlib import Path

from deployer.cli import Context
from deployer.release import Release


def main() -> None:
    boundary, version = sys.argv[1], sys.argv[2]
    phase, _, done = boundary.partition(":")
    engine = Context(Path("deployer.yaml")).engine()

    def die_at_boundary(record):
        if record.phase.value == phase and record.phase_done == bool(done):
            os.kill(os.getpid(), signal.SIGKILL)

    engine.on_phase = die_at_boundary
    Release(engine).run(version)
    sys.exit("the release finished before reaching the boundary")


if __name__ == "__main__":
    main()
