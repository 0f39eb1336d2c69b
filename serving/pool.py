"""The model pool: loaded models kept within a RAM budget, one request at a time per model.

Each model id has a gate (a lock plus a count of waiting requests). Every generation holds
its model's gate, so a llama.cpp context is never used by two threads; a request that finds
`max_queue` others already waiting gets `Busy` at once instead of hanging. Loaded models
are evicted least-recently-used first when a new one would not fit the budget; a model
that is in use or has requests queued is never evicted, and a model being loaded holds its
reservation from before its load starts, so two first loads cannot both overrun the budget.
What a "model" is, and how it is loaded, is the caller's business (`load` returns any object
with `close()`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from serving.errors import Busy, ModelUnavailable

log = logging.getLogger(__name__)
_POLL_S = 0.05  # how often a waiting request checks its cancel flag


class Cancelled(Exception):
    """The request was cancelled while it waited for its model."""


@dataclass
class _Gate:
    lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: int = 0
    """Requests holding or waiting for `lock`."""


@dataclass
class _Loaded:
    model: Any
    size_bytes: int


class ModelPool:
    """Loaded models by id, bounded by `budget_bytes`, each used by one request at a time."""

    def __init__(self, budget_bytes: int, max_queue: int, queue_timeout_s: float):
        self.budget_bytes = budget_bytes
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self._gates: dict[str, _Gate] = {}
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()  # least recently used first
        self._reserved: dict[str, int] = {}  # bytes held for models being loaded now
        self._lock = threading.Lock()

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def used_bytes(self) -> int:
        with self._lock:
            return sum(item.size_bytes for item in self._loaded.values())

    @contextmanager
    def use(self, model_id: str, size_bytes: Callable[[], int], load: Callable[[], Any],
            cancel: threading.Event | None = None) -> Iterator[Any]:
        """Hold `model_id`'s gate and yield its loaded model (loading it first if needed)."""
        gate = self._enter(model_id)
        try:
            self._acquire(gate, model_id, cancel)
            try:
                yield self._ensure_loaded(model_id, size_bytes, load)
            finally:
                gate.lock.release()
        finally:
            with self._lock:
                gate.waiting -= 1

    def _enter(self, model_id: str) -> _Gate:
        with self._lock:
            gate = self._gates.setdefault(model_id, _Gate())
            if gate.waiting > self.max_queue:
                raise Busy(f"The model is busy ({gate.waiting} requests ahead); please try again in a moment.",
                           f"{model_id}: queue full ({gate.waiting} holding or waiting, max_queue={self.max_queue})")
            gate.waiting += 1
            return gate

    def _acquire(self, gate: _Gate, model_id: str, cancel: threading.Event | None) -> None:
        deadline = time.monotonic() + self.queue_timeout_s
        while not gate.lock.acquire(timeout=_POLL_S):
            if cancel is not None and cancel.is_set():
                raise Cancelled(model_id)
            if time.monotonic() > deadline:
                raise Busy("The model is still busy after a long wait; please try again in a moment.",
                           f"{model_id}: waited {self.queue_timeout_s:.0f}s for the model")

    def _ensure_loaded(self, model_id: str, size_bytes: Callable[[], int], load: Callable[[], Any]) -> Any:
        with self._lock:
            if model_id in self._loaded:
                self._loaded.move_to_end(model_id)
                return self._loaded[model_id].model
        need = size_bytes()
        if need > self.budget_bytes:
            raise ModelUnavailable(
                "This model is too large for this server's memory budget.",
                f"{model_id}: needs ~{need / 2**20:.0f} MiB, budget is {self.budget_bytes / 2**20:.0f} MiB")
        self._unload(self._reserve(model_id, need))
        try:
            model = load()
        finally:
            with self._lock:
                self._reserved.pop(model_id, None)
        with self._lock:
            self._loaded[model_id] = _Loaded(model, need)
        log.info("pool: %s loaded (~%.0f MiB); pool holds %s", model_id, need / 2**20, ", ".join(self.loaded_ids()))
        return model

    def _reserve(self, model_id: str, need: int) -> list[tuple[str, _Loaded]]:
        """Reserve `need` bytes for `model_id` before it loads, picking idle models to unload for it.

        Models still loading count with their reservation; a model that is in use or has requests
        queued for it is never a victim. The victims' gates are held until `_unload` closes them.
        """
        with self._lock:
            used = sum(item.size_bytes for item in self._loaded.values()) + sum(self._reserved.values())
            victims = []
            for mid in list(self._loaded):
                if used + need <= self.budget_bytes:
                    break
                if mid != model_id and self._gates[mid].waiting == 0 and self._gates[mid].lock.acquire(blocking=False):
                    victims.append((mid, self._loaded.pop(mid)))
                    used -= victims[-1][1].size_bytes
            if used + need > self.budget_bytes:
                for mid, item in victims:  # not enough even so: put them back untouched
                    self._loaded[mid] = item
                    self._gates[mid].lock.release()
                raise Busy("The server is busy with other models; please try again in a moment.",
                           f"{model_id}: needs {need} bytes, {used} used or reserved by busy models")
            self._reserved[model_id] = need
            return victims

    def _unload(self, victims: list[tuple[str, _Loaded]]) -> None:
        for victim, item in victims:
            try:
                log.info("pool: unloading %s (least recently used) to make room", victim)
                item.model.close()
            finally:
                self._gates[victim].lock.release()

    def close(self) -> None:
        """Unload every idle model."""
        with self._lock:
            items = list(self._loaded.items())
        for model_id, item in items:
            with self._gates[model_id].lock, self._lock:
                self._loaded.pop(model_id, None)
            item.model.close()
