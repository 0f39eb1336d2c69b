"""Stop flags of running generations, by conversation: one Stop press stops every run of its conversation.

Each run gets its own `threading.Event`, registered under its conversation key while it runs, so two
runs of one conversation (a double submit, a retry while answering) never share, clear or unregister
each other's flag. Gradio-free; the pages hold one `StopFlags` each.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class StopFlags:
    """The flags of the runs in progress, by conversation key."""

    def __init__(self) -> None:
        self._runs: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()

    @contextmanager
    def run(self, key: str) -> Iterator[threading.Event]:
        """A fresh flag for one run of `key`, registered until the run ends."""
        flag = threading.Event()
        with self._lock:
            self._runs.setdefault(key, set()).add(flag)
        try:
            yield flag
        finally:
            with self._lock:
                flags = self._runs.get(key, set())
                flags.discard(flag)
                if not flags:
                    self._runs.pop(key, None)

    def stop(self, key: str) -> int:
        """Set the flag of every run of `key`; returns how many were running."""
        with self._lock:
            flags = list(self._runs.get(key, ()))
        for flag in flags:
            flag.set()
        return len(flags)

    def running(self, key: str) -> int:
        with self._lock:
            return len(self._runs.get(key, ()))
