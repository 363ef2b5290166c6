"""Users of a released app: steady requests to its URL, counted by status and version."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter


class Users:
    """`rate` requests per second to `url` from a few threads, until stopped.

    with Users(url, rate=40) as users:
        ...
    users.statuses  # Counter({200: 812, 500: 9})
    """

    def __init__(self, url: str, rate: float = 40.0, threads: int = 4) -> None:
        self.url = url
        self.statuses: Counter[int] = Counter()
        self.bodies: Counter[str] = Counter()
        self._pause = threads / rate
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, name=f"user-{n}", daemon=True)
            for n in range(threads)
        ]

    def __enter__(self) -> Users:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as answer:
                    status, body = answer.status, answer.read().decode(errors="replace")
            except urllib.error.HTTPError as error:
                status, body = error.code, error.read().decode(errors="replace")
            except OSError:
                status, body = 0, ""
            with self._lock:
                self.statuses[status] += 1
                self.bodies[body.strip()] += 1
            self._stop.wait(max(0.0, self._pause - (time.monotonic() - started)))
