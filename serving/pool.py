"""The model pool: loaded models kept within a RAM budget, shared by the requests that use them.

Each model id has a gate: a lock held while the model loads (or unloads) and a count of the
requests using it. Many requests may use one loaded model at once; serialising its llama.cpp
context is the model's business (`serving.backends.batched` gives each model one decode thread).
Loaded models are evicted least-recently-used first when a new one would not fit the budget; a
model that is in use or has requests waiting for it is never evicted, and a model being loaded
holds its reservation from before its load starts, so two first loads cannot both overrun the
budget. A loaded model whose `alive` is False (its decode thread died) is loaded again by the
next request; the dead one is closed when the last request still holding it leaves (a request may
be tokenizing with it), never under it. A model may ride on another (`parent`: a LoRA adapter over its
base's weights, used only while its caller holds the base): it counts only its own bytes, and unloading
the parent unloads it first. What a "model" is, and how it is loaded, is the caller's business
(`load` returns any object with `close()`).
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
    """Held while the model loads or unloads."""
    users: int = 0
    """Requests using the model or waiting for it to load."""


@dataclass(eq=False)
class _Loaded:
    model: Any
    size_bytes: int
    users: int = 0
    """Requests holding this model now (it may have been retired from the pool meanwhile)."""
    retired: bool = False
    """Replaced (its decode thread died): closed when its last user leaves, never under one."""
    closed: bool = False
    parent: str | None = None
    """The model this one rides on (unloaded with it)."""


class ModelPool:
    """Loaded models by id, bounded by `budget_bytes`, shared by concurrent requests."""

    def __init__(self, budget_bytes: int, queue_timeout_s: float):
        self.budget_bytes = budget_bytes
        self.queue_timeout_s = queue_timeout_s
        self._gates: dict[str, _Gate] = {}
        self._loaded: OrderedDict[str, _Loaded] = OrderedDict()  # least recently used first
        self._reserved: dict[str, int] = {}  # bytes held for models being loaded now
        self._lock = threading.Lock()

    def loaded_ids(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    def loaded_models(self) -> list[Any]:
        with self._lock:
            return [item.model for item in self._loaded.values()]

    def used_bytes(self) -> int:
        with self._lock:
            return sum(item.size_bytes for item in self._loaded.values())

    @contextmanager
    def use(self, model_id: str, size_bytes: Callable[[], int], load: Callable[[], Any],
            cancel: threading.Event | None = None, parent: str | None = None) -> Iterator[Any]:
        """Yield `model_id`'s loaded model (loading it first if needed); it stays loaded until the block ends.

        `parent`: the id of the model this one rides on, which the caller holds (`use`) around this block; the
        parent then stays loaded, and it is never unloaded without unloading this one first."""
        gate, item = self._enter(model_id), None
        try:
            self._acquire(gate, model_id, cancel)
            try:
                item = self._ensure_loaded(model_id, size_bytes, load, parent)
            finally:
                gate.lock.release()
            yield item.model
        finally:
            with self._lock:
                gate.users -= 1
                if item is not None:
                    item.users -= 1
            if item is not None:
                self._close_if_retired(item)

    def users(self, model_id: str) -> int:
        """Requests using `model_id` now (or waiting for it to load)."""
        with self._lock:
            gate = self._gates.get(model_id)
            return gate.users if gate else 0

    def _enter(self, model_id: str) -> _Gate:
        with self._lock:
            gate = self._gates.setdefault(model_id, _Gate())
            gate.users += 1
            return gate

    def _acquire(self, gate: _Gate, model_id: str, cancel: threading.Event | None) -> None:
        deadline = time.monotonic() + self.queue_timeout_s
        while not gate.lock.acquire(timeout=_POLL_S):
            if cancel is not None and cancel.is_set():
                raise Cancelled(model_id)
            if time.monotonic() > deadline:
                raise Busy("The model is still loading after a long wait; please try again in a moment.",
                           f"{model_id}: waited {self.queue_timeout_s:.0f}s for the model to load")

    def _ensure_loaded(self, model_id: str, size_bytes: Callable[[], int], load: Callable[[], Any],
                       parent: str | None) -> _Loaded:
        """The loaded model, its user count raised (called with the model's gate held)."""
        with self._lock:
            item = self._loaded.get(model_id)
            if item is not None and getattr(item.model, "alive", True):
                self._loaded.move_to_end(model_id)
                item.users += 1
                return item
            if item is not None:  # its decode thread died: load it afresh ("model restarting")
                log.warning("pool: %s stopped working; loading it again", model_id)
                del self._loaded[model_id]
                item.retired = True
        if item is not None:
            self._close_if_retired(item)  # requests still holding it (tokenizing, say) close it when they leave
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
        item = _Loaded(model, need, users=1, parent=parent)
        with self._lock:
            self._loaded[model_id] = item
        log.info("pool: %s loaded (~%.0f MiB); pool holds %s", model_id, need / 2**20, ", ".join(self.loaded_ids()))
        return item

    def _close_if_retired(self, item: _Loaded) -> None:
        """Close a retired model once nobody holds it (exactly once: whoever sees the last user leave)."""
        with self._lock:
            if not item.retired or item.users > 0 or item.closed:
                return
            item.closed = True
        item.model.close()

    def _reserve(self, model_id: str, need: int) -> list[tuple[str, _Loaded]]:
        """Reserve `need` bytes for `model_id` before it loads, picking idle models to unload for it.

        Models still loading count with their reservation; a model that is in use or has requests
        queued for it is never a victim, and a victim's riders go with it, before it. The victims' gates
        are held until `_unload` closes them.
        """
        with self._lock:
            used = sum(item.size_bytes for item in self._loaded.values()) + sum(self._reserved.values())
            victims: list[tuple[str, _Loaded]] = []
            for mid in list(self._loaded):
                if used + need <= self.budget_bytes:
                    break
                if mid != model_id and mid in self._loaded:
                    taken = self._take_idle([*self._riders(mid), mid])
                    victims += taken
                    used -= sum(item.size_bytes for _, item in taken)
            if used + need > self.budget_bytes:
                for mid, item in victims:  # not enough even so: put them back untouched
                    self._loaded[mid] = item
                    self._gates[mid].lock.release()
                raise Busy("The server is busy with other models; please try again in a moment.",
                           f"{model_id}: needs {need} bytes, {used} used or reserved by busy models")
            self._reserved[model_id] = need
            return victims

    def _riders(self, model_id: str) -> list[str]:
        return [mid for mid, item in self._loaded.items() if item.parent == model_id]

    def _take_idle(self, ids: list[str]) -> list[tuple[str, _Loaded]]:
        """Take `ids` out of the pool with their gates held, all or none: none when any is in use, has requests
        queued, or is loading (called with the pool's lock held)."""
        held = []
        for mid in ids:
            if self._gates[mid].users or not self._gates[mid].lock.acquire(blocking=False):
                for other in held:
                    self._gates[other].lock.release()
                return []
            held.append(mid)
        return [(mid, self._loaded.pop(mid)) for mid in held]

    def _unload(self, victims: list[tuple[str, _Loaded]]) -> None:
        for victim, item in victims:
            try:
                log.info("pool: unloading %s (least recently used) to make room", victim)
                item.model.close()
            finally:
                self._gates[victim].lock.release()

    def close(self) -> None:
        """Unload every idle model (riders before the model they ride on)."""
        with self._lock:
            items = sorted(self._loaded.items(), key=lambda pair: pair[1].parent is None)
        for model_id, item in items:
            with self._gates[model_id].lock, self._lock:
                self._loaded.pop(model_id, None)
            item.model.close()
