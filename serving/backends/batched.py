"""Continuous batching on one llama.cpp context: many conversations decode together.

A `Scheduler` owns one llama.cpp context with `n_slots` sequences and is the only thread that ever
touches it. Requests (`Job`s) join and leave the running batch between steps: each step holds one
token of every answer being decoded plus a bounded chunk of prompt tokens of answers still reading
their prompt, so a long prompt does not stall the others for long; a cancel stops even a step in
progress (llama.cpp's abort callback). Each job has its own sampler chain (settings, seed, grammar,
logit bias).

Each slot remembers the tokens its sequence holds in the KV cache and the conversation they belong
to, so a conversation's next turn re-reads only what is new. A new prompt may also borrow the
longest matching prefix from any other slot (a shared persona system prompt): the other slot's KV
stream is copied and trimmed, which costs a memory copy instead of reading the prompt again. When every slot is taken, the least recently used idle
conversation's KV state is saved to RAM (bounded) and restored when that conversation comes back.

A job may name a LoRA adapter loaded over the model (`Lora`; None is the bare base). llama.cpp applies
one adapter set per context (`llama_set_adapters_lora`), so each step holds the jobs of one adapter and
the adapters of running jobs take turns; a slot's KV is reused only by jobs of the adapter that computed
it (its keys and values went through that adapter's weights). Adapters are loaded and freed on this
thread (`call`), never under a step.

Jobs that find no free slot wait in a FIFO queue and hear their position; more than `max_queue`
waiting get `Busy` at once. Knows nothing of chat templates, prompts or visitors: tokens in, text
pieces out (see `serving.backends.llamacpp` for the model around it).
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import queue
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import llama_cpp as ll

from serving.errors import Busy, ModelUnavailable

log = logging.getLogger(__name__)
_STEP_TARGET_S = 1.0  # how long a step reading prompt tokens may take (others' next tokens wait that long)
_MIN_CHUNK = 8
_MIN_BORROW = 32  # prompt tokens worth copying another slot's KV stream for (the copy moves a whole stream)
# Steps one adapter's jobs decode before another adapter's get their turn: a switch makes llama.cpp reserve its
# compute graph again at the next decode (measured in benchmarks/RESULTS-adapters.md), so turns are a few steps long.
_TURN_STEPS = 4
SHARED_PREFIX = "prefix:"
"""Conversation ids starting with this hold only what every visitor of a persona shares (its prompt and knowledge,
no visitor's text): the slot of a forgotten conversation keeps the part of its KV that equals such a prefix, so the
next visitor borrows it instead of reading it again."""


@dataclass(frozen=True)
class Queued:
    """The job waits for a slot: `position` jobs ahead counting itself, about `wait_s` seconds."""

    position: int
    wait_s: float


@dataclass(frozen=True)
class Piece:
    """Visible text of one or more sampled tokens (whole UTF-8 characters only)."""

    text: str


@dataclass(frozen=True)
class Finished:
    reason: str
    """"stop" (end-of-generation or template token) | "length" | "cancelled"."""
    n_prompt: int
    n_tokens: int
    reused: int
    """Prompt tokens that were already in the KV cache (not evaluated again)."""


@dataclass(eq=False)
class Lora:
    """A LoRA adapter llama.cpp loaded over the scheduler's model (`llama_adapter_lora_init`), applied at `scale`.
    Compared by identity: two loads of one file are two adapters."""

    name: str
    pointer: Any
    """The `llama_adapter_lora_p` (never NULL: a refused file is an error before a `Lora` exists)."""
    scale: float = 1.0

    def __post_init__(self) -> None:
        self._adapters = (ll.llama_adapter_lora_p_ctypes * 1)(self.pointer)
        self._scales = (ctypes.c_float * 1)(self.scale)

    def apply(self, ctx) -> None:
        """Make this the one adapter `ctx` computes with."""
        ll.llama_set_adapters_lora(ctx, self._adapters, 1, self._scales)

    def free(self) -> None:
        ll.llama_adapter_lora_free(self.pointer)


Owner = tuple[str, Lora | None]
"""Whose KV a slot or a RAM save holds: (conversation id, the adapter that computed it)."""


@dataclass(eq=False)
class Job:
    """One answer to generate. Created by the caller; the scheduler fills `events`."""

    prompt: list[int]
    max_tokens: int
    sampler: object
    """A `llama_cpp._internals.LlamaSampler` chain owned by this job (closed when it ends)."""
    stop_ids: frozenset[int]
    """Sampled tokens that end the answer without being shown (end-of-generation, template tokens)."""
    cancel: threading.Event
    conversation_id: str | None = None
    adapter: Lora | None = None
    """The LoRA adapter to decode with (None: the bare base)."""
    events: queue.Queue = field(default_factory=queue.Queue)
    enqueued: float = field(default_factory=time.monotonic)
    # scheduler-side state
    cursor: int = 0  # prompt tokens already in the KV cache
    reused: int = 0
    next_token: int | None = None  # sampled, not yet decoded
    n_out: int = 0
    position: int = 0  # last queue position told
    awaits: tuple | None = None  # (slot, its job, tokens): another job reading our prompt's prefix, to copy from
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))

    @property
    def owner(self) -> Owner | None:
        return None if self.conversation_id is None else (self.conversation_id, self.adapter)

    def results(self, poll_s: float = 0.05) -> Iterator[Queued | Piece | Finished]:
        """Events until `Finished` (an exception the scheduler put is raised here)."""
        while True:
            try:
                item = self.events.get(timeout=poll_s)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, Finished):
                return


@dataclass(eq=False)
class _Slot:
    seq: int
    tokens: list[int] = field(default_factory=list)
    """What this sequence holds in the KV cache, positions 0..n-1."""
    owner: Owner | None = None
    used: float = 0.0
    job: Job | None = None
    adapter: Lora | None = None
    """The adapter that computed `tokens`' KV."""


@dataclass(frozen=True)
class _Saved:
    tokens: list[int]
    state: bytearray
    """llama.cpp's sequence state, written straight into this buffer (never through a Python list of ints)."""


def _longest(slots: list[_Slot], tokens_of, prompt: list[int]) -> tuple[_Slot | None, int]:
    """The slot whose `tokens_of(slot)` shares the longest prefix with `prompt`, and that length."""
    scored = [(common_prefix(tokens_of(s), prompt), i) for i, s in enumerate(slots)]
    length, i = max(scored, default=(0, -1))
    return (slots[i] if scored else None), length


def _c_bytes(buffer: bytearray):
    """A ctypes view of `buffer` for llama.cpp to read or write in place (no copy)."""
    return (ctypes.c_uint8 * len(buffer)).from_buffer(buffer)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Scheduler:
    """The one thread that decodes on `ctx`; `submit` jobs from any thread."""

    def __init__(self, ctx, vocab_piece, n_slots: int, n_batch: int, prefill_chunk: int, max_queue: int,
                 queue_timeout_s: float, saved_budget_bytes: int, name: str = "model"):
        self._ctx = ctx
        self._piece = vocab_piece  # token id -> bytes
        self._slots = [_Slot(i) for i in range(n_slots)]
        self._n_batch = n_batch
        self._chunk = max(1, min(prefill_chunk, n_batch))
        self._max_queue = max_queue
        self._queue_timeout_s = queue_timeout_s
        self._saved: OrderedDict[Owner, _Saved] = OrderedDict()
        self._saved_budget = saved_budget_bytes
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._clear = False
        self._forget: set[str] = set()  # conversations whose KV (slot and RAM save) is to be dropped
        self._shared: dict[Owner, list[int]] = {}  # the shared prefixes (`SHARED_PREFIX`) read so far
        # Sequences that are the source or target of a KV copy llama.cpp has queued but not done yet: a copy
        # between two KV streams is only recorded by llama_memory_seq_cp and done at the start of the next
        # llama_decode (llama-kv-cache.cpp seq_cp: "enqueue the copy operation - the buffer copy will be performed
        # during the next update"), while llama_state_seq_set_data writes at once. Restoring into such a
        # sequence before that decode would let the queued copy carry the restored conversation elsewhere.
        self._pending_copy: set[int] = set()
        self._applied: Lora | None = None  # the adapter set on the context now
        self._turn_left = 0  # steps left in the applied adapter's turn
        self._calls: deque[tuple[Callable[[], Any], Future]] = deque()  # to run on this thread between steps
        self.counts: Counter[str] = Counter()
        """Events so far, for logs and tests: copies, saves, restores, prefix_restores, restores_skipped,
        aborted_steps, forgotten."""
        self._job_s = 5.0  # running mean of a job's duration, for wait estimates
        self._chunk_now = min(self._chunk, 64)  # prompt tokens per step: adapted to the measured step time
        self._batch = ll.llama_batch_init(n_batch, 0, 1)
        self._mem = ll.llama_get_memory(ctx)
        self._step_jobs: list[Job] = []  # jobs in the step being computed, for the abort check
        self._abort = ll.ggml_abort_callback(lambda _data: any(job.cancel.is_set() for job in self._step_jobs))
        self._no_abort = ll.ggml_abort_callback()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"decode-{name}")
        self._thread.start()

    # ---- any thread ------------------------------------------------------------------------
    def submit(self, job: Job) -> Job:
        """Queue `job`; raises `Busy` when `max_queue` jobs already wait for a slot."""
        with self._cond:
            if self._closed:
                raise ModelUnavailable("The model is restarting; please try again in a moment.", "scheduler closed")
            jobs = [s.job for s in self._slots]  # read once: the decode thread may end a job meanwhile
            free = sum(job is None or job.cancel.is_set() for job in jobs)  # cancelled: free next step
            if len(self._waiting) >= free + self._max_queue:
                ahead = len(self._waiting) - free
                raise Busy(f"The model is busy ({ahead} requests ahead); please try again in a moment.",
                           f"queue full ({ahead} waiting, max_queue={self._max_queue})")
            self._waiting.append(job)
            self._cond.notify_all()
        return job

    @property
    def alive(self) -> bool:
        """False once the decode thread stopped (closed, or a llama.cpp failure): the model must be reloaded."""
        return self._thread.is_alive() and not self._closed

    def busy_slots(self) -> int:
        with self._cond:
            return sum(s.job is not None for s in self._slots)

    def free_slots(self) -> int:
        """Slots no job holds and no waiting job will take: how many answers could start decoding now."""
        with self._cond:
            return max(0, sum(s.job is None for s in self._slots) - len(self._waiting))

    def cached_tokens(self, conversation_id: str, adapter: Lora | None = None) -> list[int] | None:
        """The tokens the KV cache (or the RAM save) holds for a conversation with `adapter`, if any."""
        owner = (conversation_id, adapter)
        with self._cond:
            slot = next((s for s in self._slots if s.owner == owner), None)
            if slot is not None:
                return list(slot.tokens)
            saved = self._saved.get(owner)
            return list(saved.tokens) if saved else None

    def call(self, fn: Callable[[], Any]) -> Any:
        """`fn()` run on the decode thread between two steps, its result returned (or its exception raised here):
        for llama.cpp calls that must not overlap a decode. Loading or freeing an adapter changes the model's
        adapter list, which a step's graph sizing walks (llama-context.cpp `graph_max_nodes`:
        "for (const auto & lora : model.loras)")."""
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise ModelUnavailable("The model is restarting; please try again in a moment.", "scheduler closed")
            self._calls.append((fn, future))
            self._cond.notify_all()
        return future.result()

    def drop_adapter(self, lora: Lora) -> None:
        """Free `lora` on the decode thread: its jobs end as cancelled (nobody holds its model any more), the KV it
        computed is emptied, the context stops applying it."""
        self.call(lambda: self._drop_adapter(lora))

    def clear_cache(self) -> None:
        """Forget every idle slot's KV cache and the RAM saves (done by the decode thread before its next step)."""
        with self._cond:
            self._clear = True
            self._cond.notify_all()
            while self._clear and not self._closed:
                self._cond.wait(timeout=0.1)

    def forget(self, conversation_id: str) -> None:
        """Drop a conversation's KV: its idle slot is emptied and its RAM save deleted (by the decode thread)."""
        with self._cond:
            self._forget.add(conversation_id)
            self._cond.notify_all()

    def saved_bytes(self) -> int:
        """RAM the saved KV states hold now."""
        with self._cond:
            return sum(len(saved.state) for saved in self._saved.values())

    def close(self) -> None:
        """Stop the decode thread; running and waiting jobs hear that the model is restarting."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        ll.llama_batch_free(self._batch)

    # ---- the decode thread -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while (not self._closed and not self._waiting and not self._active() and not self._clear
                           and not self._forget and not self._calls):
                        self._cond.wait()
                    if self._closed:
                        break
                    if self._clear:
                        self._drop_idle()
                    if self._forget:
                        self._drop_forgotten()
                    calls = list(self._calls)
                    self._calls.clear()
                self._run_calls(calls)
                with self._cond:
                    self._admit()
                if self._active():
                    self._step()
        except BaseException as err:  # a broken context: the running jobs hear it, new ones are refused
            log.exception("decode thread failed")
            self._end_jobs(ModelUnavailable("The model stopped unexpectedly; please try again.", repr(err)))
        finally:  # running and waiting jobs, whether closed or broken (a broken one's have heard already)
            self._end_jobs(ModelUnavailable("The model is restarting; please try again in a moment.", "closed"))

    def _end_jobs(self, error: ModelUnavailable) -> None:
        """Close for good: every running and waiting job gets `error` (their result loops end), and so does every
        caller of `call` still waiting."""
        with self._cond:
            self._closed = True
            jobs = [s.job for s in self._slots if s.job] + list(self._waiting)
            self._waiting.clear()
            for slot in self._slots:
                slot.job = None
            calls = list(self._calls)
            self._calls.clear()
        for job in jobs:
            job.sampler.close()
            job.events.put(error)
        for _, future in calls:
            future.set_exception(error)

    @staticmethod
    def _run_calls(calls: list[tuple[Callable[[], Any], Future]]) -> None:
        for fn, future in calls:
            try:
                future.set_result(fn())
            except Exception as err:  # the caller's to handle: it is raised in its thread
                future.set_exception(err)

    def _drop_adapter(self, lora: Lora) -> None:
        with self._cond:
            waiting = [job for job in self._waiting if job.adapter is lora]
            for job in waiting:
                self._waiting.remove(job)
        for job in waiting:
            job.sampler.close()
            job.events.put(Finished("cancelled", len(job.prompt), 0, 0))
        for slot in self._slots:
            if slot.job is not None and slot.job.adapter is lora:
                self._finish(slot, "cancelled")
            if slot.adapter is lora:
                ll.llama_memory_seq_rm(self._mem, slot.seq, 0, -1)
                slot.tokens, slot.owner, slot.adapter = [], None, None
        for owner in [owner for owner in self._saved if owner[1] is lora]:
            del self._saved[owner]
        if self._applied is lora:
            self._apply(None)
        lora.free()

    def _apply(self, lora: Lora | None) -> None:
        """Set the context's adapters to `lora` alone (None: none). Changing them makes llama.cpp size its compute
        graph again at the next decode (llama-context.cpp `set_adapters_lora`: "sched_need_reserve = true"); the KV
        cache is left as it is."""
        if lora is self._applied:
            return
        if lora is None:
            ll.llama_set_adapters_lora(self._ctx, None, 0, None)
        else:
            lora.apply(self._ctx)
        self._applied = lora

    def _drop_idle(self) -> None:
        for slot in self._slots:
            if slot.job is None:
                ll.llama_memory_seq_rm(self._mem, slot.seq, 0, -1)
                slot.tokens, slot.owner = [], None
        self._saved.clear()
        self._clear = False
        self._cond.notify_all()

    def _drop_forgotten(self) -> None:
        """Empty the idle slots of forgotten conversations and delete their RAM saves; a forgotten conversation
        whose answer still runs loses its ownership (its KV is never saved, and is reused first)."""
        for slot in self._slots:
            if slot.owner is not None and slot.owner[0] in self._forget:
                if slot.job is None:
                    keep = self._shared_part(slot)
                    ll.llama_memory_seq_rm(self._mem, slot.seq, keep, -1)
                    del slot.tokens[keep:]
                slot.owner = None
        for owner in [owner for owner in self._saved if owner[0] in self._forget]:
            del self._saved[owner]
        self.counts["forgotten"] += len(self._forget)
        self._forget.clear()

    def _shared_part(self, slot: _Slot) -> int:
        """How many of `slot`'s first tokens equal a shared prefix (`SHARED_PREFIX`) computed by the same adapter:
        worth keeping when the slot's conversation is forgotten (0 when shorter than a borrow)."""
        longest = max((common_prefix(slot.tokens, tokens) for owner, tokens in self._shared.items()
                       if owner[1] is slot.adapter), default=0)
        return longest if longest >= _MIN_BORROW else 0

    def _active(self) -> list[_Slot]:
        return [s for s in self._slots if s.job is not None]

    def _admit(self) -> None:
        """Move waiting jobs into free slots (cancelled or expired ones leave); tell the rest where they are."""
        now = time.monotonic()
        for job in list(self._waiting):
            if job.cancel.is_set():
                self._waiting.remove(job)
                job.events.put(Finished("cancelled", len(job.prompt), 0, 0))
            elif now - job.enqueued > self._queue_timeout_s:
                self._waiting.remove(job)
                job.events.put(Busy("The model is still busy after a long wait; please try again in a moment.",
                                    f"waited {self._queue_timeout_s:.0f}s for a slot"))
        while self._waiting and any(s.job is None for s in self._slots):
            job = self._waiting[0]
            self._place(job, self._pick_slot(job))
            self._waiting.popleft()
        for position, job in enumerate(self._waiting, start=1):
            if job.position != position:
                job.position = position
                job.events.put(Queued(position, round(self._job_s * position / len(self._slots), 1)))

    def _pick_slot(self, job: Job) -> _Slot:
        free = [s for s in self._slots if s.job is None]
        if job.owner is not None:
            own = next((s for s in free if s.owner == job.owner), None)
            if own is not None:
                return own
        # an empty slot, else one no conversation owns, else the least recently used conversation's; a
        # conversation coming back from RAM avoids slots a queued copy still involves (see `_pending_copy`)
        restoring = job.owner in self._saved
        return min(free, key=lambda s: (restoring and s.seq in self._pending_copy, bool(s.tokens),
                                        s.owner is not None, s.used))

    def _place(self, job: Job, slot: _Slot) -> None:
        """Give `job` the slot, keeping the longest prefix of its prompt already cached anywhere (by its adapter)."""
        if slot.owner != job.owner:
            if slot.owner is not None:  # a slot no conversation owns keeps its KV (a shared prefix, `SHARED_PREFIX`)
                self._save(slot)
            if job.owner in self._saved:
                self._restore(slot, job.owner)
        if slot.adapter is not job.adapter:  # KV computed through other weights is no prefix of this job's
            ll.llama_memory_seq_rm(self._mem, slot.seq, 0, -1)
            slot.tokens, slot.adapter = [], job.adapter
        if job.conversation_id is not None and job.conversation_id.startswith(SHARED_PREFIX):
            self._shared[job.owner] = job.prompt
        limit = len(job.prompt) - 1  # the last prompt token is always evaluated: it gives the first logits
        others = [s for s in self._slots if s is not slot and s.adapter is job.adapter]
        keep = min(common_prefix(slot.tokens, job.prompt), limit)
        donor, cached = _longest(others, lambda s: s.tokens, job.prompt[:limit])
        stored, in_ram = self._saved_prefix(job.prompt[:limit], job.adapter)
        if cached >= keep + _MIN_BORROW and cached >= in_ram:
            self._copy_prefix(donor, slot, cached)
            keep = cached
        elif in_ram >= keep + _MIN_BORROW and slot.seq not in self._pending_copy:
            keep = self._restore_prefix(slot, stored, in_ram)
        else:
            ll.llama_memory_seq_rm(self._mem, slot.seq, keep, -1)
            del slot.tokens[keep:]
        job.cursor = job.reused = keep
        slot.owner, slot.job, slot.used = job.owner, job, time.monotonic()
        reading, wanted = _longest([s for s in others if s.job], lambda s: s.job.prompt, job.prompt[:limit])
        if wanted >= keep + _MIN_BORROW and reading.job.awaits is None:
            job.awaits = (reading, reading.job, wanted)  # another visitor reads the same prefix now: copy it after

    def _copy_prefix(self, donor: _Slot, slot: _Slot, n: int) -> None:
        """Make `slot` hold the first `n` tokens of `donor`'s KV. Slots are separate KV streams, so llama.cpp copies
        the donor's whole stream (one memory copy, far cheaper than reading the tokens again), then it is trimmed."""
        ll.llama_memory_seq_rm(self._mem, slot.seq, 0, -1)
        ll.llama_memory_seq_cp(self._mem, donor.seq, slot.seq, -1, -1)
        ll.llama_memory_seq_rm(self._mem, slot.seq, n, -1)
        slot.tokens, slot.adapter = donor.tokens[:n], donor.adapter
        self._pending_copy |= {donor.seq, slot.seq}
        self.counts["copies"] += 1

    def _take_awaited(self, slot: _Slot) -> bool:
        """For a job waiting on another slot's prefix: True while it should keep waiting (copied once ready)."""
        job = slot.job
        donor, donor_job, wanted = job.awaits
        # the donor slot may have passed to a job of another adapter meanwhile: its KV is then no prefix of ours
        shared = common_prefix(donor.tokens, job.prompt[:wanted]) if donor.adapter is job.adapter else 0
        if shared < wanted and donor.job is donor_job:
            return True
        job.awaits = None
        if shared >= job.cursor + _MIN_BORROW:
            self._copy_prefix(donor, slot, shared)
            job.cursor = job.reused = shared
        return False

    def _save(self, slot: _Slot) -> None:
        """Keep the departing conversation's KV state in RAM (bounded, least recently used dropped first) and empty
        the slot. A slot a queued copy still writes to holds no data yet: nothing is saved from it."""
        if slot.owner is not None and slot.tokens and slot.seq not in self._pending_copy:
            size = ll.llama_state_seq_get_size(self._ctx, slot.seq)
            if 0 < size <= self._saved_budget:
                state = bytearray(size)  # llama.cpp writes straight into it: no per-byte Python objects
                written = ll.llama_state_seq_get_data(self._ctx, _c_bytes(state), size, slot.seq)
                del state[written:]
                if written:
                    self._keep(slot.owner, _Saved(list(slot.tokens), state))
                    self.counts["saves"] += 1
        ll.llama_memory_seq_rm(self._mem, slot.seq, 0, -1)
        slot.tokens, slot.owner = [], None

    def _keep(self, owner: Owner, saved: _Saved) -> None:
        self._saved[owner] = saved
        self._saved.move_to_end(owner)
        while sum(len(s.state) for s in self._saved.values()) > self._saved_budget:
            self._saved.popitem(last=False)

    def _restore(self, slot: _Slot, owner: Owner) -> None:
        """Put a saved conversation back into `slot`, unless a queued copy involves the slot (then it is read
        again: restoring there would be overwritten by, or leak into, that copy)."""
        saved = self._saved.pop(owner)
        if slot.seq in self._pending_copy:
            ll.llama_memory_seq_rm(self._mem, slot.seq, 0, -1)
            slot.tokens = []
            log.info("a queued KV copy involves the only free slot: a returning conversation is read again")
            self.counts["restores_skipped"] += 1
        elif self._load(slot, owner, saved):
            self.counts["restores"] += 1
        else:
            log.warning("could not restore the KV state of a conversation; it is read again")

    def _load(self, slot: _Slot, owner: Owner, saved: _Saved) -> bool:
        """Empty `slot` and write `saved` (computed by `owner`'s adapter) into it; False, the slot left empty, if
        llama.cpp refused the state."""
        ll.llama_memory_seq_rm(self._mem, slot.seq, 0, -1)
        slot.tokens, slot.adapter = [], owner[1]
        if ll.llama_state_seq_set_data(self._ctx, _c_bytes(saved.state), len(saved.state), slot.seq):
            slot.tokens = list(saved.tokens)
            return True
        ll.llama_memory_seq_rm(self._mem, slot.seq, 0, -1)
        return False

    def _saved_prefix(self, prompt: list[int], adapter: Lora | None) -> tuple[Owner | None, int]:
        """The RAM save (of any conversation, or a pre-read shared prefix, computed by `adapter`) that shares the
        longest prefix with `prompt`, and that length."""
        scored = [(common_prefix(saved.tokens, prompt), owner) for owner, saved in self._saved.items()
                  if owner[1] is adapter]
        length, owner = max(scored, key=lambda pair: pair[0], default=(0, None))
        return owner, length

    def _restore_prefix(self, slot: _Slot, owner: Owner, n: int) -> int:
        """Make `slot` hold the first `n` tokens of `owner`'s RAM save, which stays saved (a shared prefix whose slot
        was taken serves every later visitor from RAM instead of being read again); how many tokens the slot holds
        (0 if llama.cpp refused the state)."""
        if not self._load(slot, owner, self._saved[owner]):
            log.warning("could not restore a saved prefix; it is read again")
            return 0
        ll.llama_memory_seq_rm(self._mem, slot.seq, n, -1)
        del slot.tokens[n:]
        self._saved.move_to_end(owner)
        self.counts["prefix_restores"] += 1
        return n

    def _step(self) -> None:
        """One llama_decode for the jobs of one adapter: a token of every decoding job, then prompt chunks, then
        sampling."""
        for slot in self._active():
            if slot.job.cancel.is_set():
                self._finish(slot, "cancelled")
        group = self._group()
        rows: list[tuple[_Slot, int, bool]] = []  # (slot, n tokens added, logits wanted)
        n = 0
        for slot in self._active():
            if slot.job.adapter is group and slot.job.next_token is not None and n < self._n_batch:
                self._add(n, slot.job.next_token, len(slot.tokens), slot.seq, True)
                rows.append((slot, 1, True))
                n += 1
        chunk, decoding = self._chunk_now, n
        budget = max(chunk - n, 1) if n else chunk
        for slot in self._active():
            job = slot.job
            if job.adapter is not group:
                continue
            if job.awaits is not None and self._take_awaited(slot):
                continue
            if job.next_token is None and budget > 0 and n < self._n_batch:
                take = min(len(job.prompt) - job.cursor, budget, self._n_batch - n)
                for i in range(take):
                    pos = job.cursor + i
                    self._add(n + i, job.prompt[pos], pos, slot.seq, pos == len(job.prompt) - 1)
                last = job.cursor + take == len(job.prompt)
                rows.append((slot, take, last))
                n, budget = n + take, budget - take
        if not rows:
            return
        self._apply(group)
        self._batch.n_tokens = n
        started = time.perf_counter()
        rc = self._decode(rows, prompt=n > decoding)
        if rc == 1:  # no room in the KV cache: idle conversations go to RAM, then once more
            for slot in self._slots:
                if slot.job is None:
                    self._save(slot)
            rc = self._decode(rows, prompt=n > decoding)
        if rc != 0:
            self._roll_back(rows)
            self.counts["aborted_steps" if rc == 2 else "failed_steps"] += 1
        if rc == 2:  # a job of this step was cancelled mid-step: the step is undone, the next one runs without it
            return
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc} for a batch of {n} tokens")
        if n > decoding:  # the step read prompt tokens: adapt how many the next one reads
            self._adapt_chunk(n, time.perf_counter() - started, chunk)
        self._after_decode(rows)

    def _group(self) -> Lora | None:
        """The adapter whose jobs this step decodes: the running jobs' adapters take turns of `_TURN_STEPS` steps."""
        adapters: list[Lora | None] = []
        for slot in self._active():
            if not any(slot.job.adapter is a for a in adapters):
                adapters.append(slot.job.adapter)
        now = next((i for i, a in enumerate(adapters) if a is self._applied), -1)
        if now >= 0 and self._turn_left > 0:
            self._turn_left -= 1
            return self._applied
        self._turn_left = _TURN_STEPS - 1
        return adapters[(now + 1) % len(adapters)] if adapters else None

    def _decode(self, rows: list, prompt: bool) -> int:
        """llama_decode of the batch; a step reading a prompt stops within one graph node when one of its jobs
        is cancelled (then `_roll_back` undoes what it wrote). Queued KV copies are done at its start."""
        if not prompt:
            return self._decode_now()
        self._step_jobs = [slot.job for slot, _, _ in rows]
        ll.llama_set_abort_callback(self._ctx, self._abort, None)
        try:
            return self._decode_now()
        finally:
            ll.llama_set_abort_callback(self._ctx, self._no_abort, None)
            self._step_jobs = []

    def _decode_now(self) -> int:
        rc = ll.llama_decode(self._ctx, self._batch)
        self._pending_copy.clear()  # llama_decode's memory update ran the queued copies before anything else
        return rc

    def _roll_back(self, rows: list[tuple[_Slot, int, bool]]) -> None:
        """Make every slot of a failed or aborted step hold exactly what its bookkeeping says.

        llama.cpp splits one decode into ubatches (one KV stream per slot: `split_equal`) and on failure or
        abort removes only the positions of the ubatch that was running (llama-context.cpp, decode: "the last
        ubatch failed or was aborted -> remove all positions of that ubatch from the memory module"); earlier
        ubatches of the step stay in the cache. `slot.tokens` was not advanced for this step, so every position
        from its length on goes."""
        for slot, _, _ in rows:
            ll.llama_memory_seq_rm(self._mem, slot.seq, len(slot.tokens), -1)

    def _adapt_chunk(self, n: int, seconds: float, chunk: int) -> None:
        """Halve the prompt chunk after a step over `_STEP_TARGET_S`, double it after a full one well under:
        the largest chunk (at most `prefill_chunk`) whose step keeps the others' next tokens waiting little,
        whatever this machine's speed and load (a cancel does not wait for the step: see `_decode`)."""
        if seconds > _STEP_TARGET_S:
            self._chunk_now = max(_MIN_CHUNK, chunk // 2)
        elif n >= chunk and seconds < _STEP_TARGET_S / 2:
            self._chunk_now = min(self._chunk, chunk * 2)

    def _add(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        b = self._batch
        b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
        b.seq_id[i][0] = seq

    def _after_decode(self, rows: list[tuple[_Slot, int, bool]]) -> None:
        index = 0
        for slot, added, wants_logits in rows:
            job = slot.job
            if job.next_token is not None:
                slot.tokens.append(job.next_token)
            else:
                slot.tokens.extend(job.prompt[job.cursor:job.cursor + added])
                job.cursor += added
            index += added
            if wants_logits:
                self._sample(slot, index - 1)
            slot.used = time.monotonic()

    def _sample(self, slot: _Slot, index: int) -> None:
        job = slot.job
        token = job.sampler.sample_at(self._ctx, index)
        if token in job.stop_ids:
            job.next_token = None
            self._finish(slot, "stop")
            return
        job.n_out += 1
        text = job.decoder.decode(self._piece(token))
        if text:
            job.events.put(Piece(text))
        if job.n_out >= job.max_tokens:
            job.next_token = None
            self._finish(slot, "length")
        else:
            job.next_token = token

    def _finish(self, slot: _Slot, reason: str) -> None:
        job = slot.job
        tail = job.decoder.decode(b"", final=True)
        if tail and reason != "cancelled":
            job.events.put(Piece(tail))
        self._job_s = 0.8 * self._job_s + 0.2 * (time.monotonic() - job.enqueued)
        job.sampler.close()
        with self._cond:  # the slot is free before the caller hears the end (it may count free slots then)
            slot.job, slot.used = None, time.monotonic()  # its KV stays: a later prompt may share its prefix
            self._cond.notify_all()
        job.events.put(Finished(reason, len(job.prompt), job.n_out, job.reused))
