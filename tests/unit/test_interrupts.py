"""A cancelled CI job (SIGINT, then SIGTERM 7.5 s later) or Ctrl-C: the first signal starts
the cleanup, the second one never cuts it short."""

from __future__ import annotations

import signal

import pytest

from deployer.cli.interrupts import Interrupts


def test_the_first_signal_interrupts_and_the_second_lets_the_cleanup_finish():
    interrupts = Interrupts()
    with pytest.raises(KeyboardInterrupt):
        interrupts.handle(signal.SIGINT, None)
    assert not interrupts.hurrying
    restored = []
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        interrupts.handle(signal.SIGTERM, None)  # GitHub's SIGTERM lands in the cleanup...
        restored.append("traffic back")  # ...which goes on
    assert restored == ["traffic back"]
    assert interrupts.hurrying  # waits that traffic does not need give up
