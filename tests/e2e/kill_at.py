"""Run `deployer release VERSION` exactly as the CLI wires it, and SIGKILL this process at a
given moment, as a CI runner that dies would:

    python -m tests.e2e.kill_at PHASE[:done] VERSION   right after the journal records PHASE
    python -m tests.e2e.kill_at wait:TEXT VERSION       while it waits on something naming TEXT
                                                        (e.g. wait:image, wait:-fleet-)
"""

import os
import signal
import sys
from pathlib import Path

from deployer.cli.context import Context
from deployer.release.loop import Release


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    moment, version = sys.argv[1], sys.argv[2]
    context = Context(Path("deployer.yaml"))
    engine = context.engine()
    if moment.startswith("wait:"):
        text = moment.removeprefix("wait:")

        def die_while_waiting(event: dict) -> None:
            if event["type"] == "wait_status" and text in event["what"]:
                die()

        engine.events.subscribe(die_while_waiting)
    else:
        phase, _, done = moment.partition(":")

        def die_at_boundary(record):
            if record.phase.value == phase and record.phase_done == bool(done):
                die()

        engine.on_phase = die_at_boundary
    Release(engine).run(version)
    sys.exit("the release finished before reaching the moment")


if __name__ == "__main__":
    main()
