"""The engine: the one API pages (and any CLI or server) use to chat with registered models.

It validates a `ChatRequest`, resolves and loads the model through the pool, writes a persona's system
turn (its prompt, then the knowledge passages and order records `serving.context` gives the question),
trims history that would overflow the context, hands the prompt to the entry's backend
(`serving/backends/`: a GGUF decoded by the batching scheduler, or a remote OpenAI-compatible server),
and streams what comes back with the leak guard, stop texts, cancel, stats and sources. It never imports
Gradio; visitor-safe messages travel in `ServingError`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from serving.config import ServingSettings
from serving.backends.batched import SHARED_PREFIX, Finished, Piece, Queued, common_prefix
from serving.backends.llamacpp import AdaptedModel, LlamaCppLoader, LlamaCppModel, Loader
from serving.backends.openai_remote import RemoteModel
from serving.context.layer import ContextLayer, question_of
from serving.context.articles import Passage
from serving.context.check import AnswerCheck, check_answer
from serving.context.drafts import DRAFT_TEMPERATURE, choose, draft_limit
from serving.context.render import RequestContext, Source, system_text, with_notes
from serving.conversation import LeakGuard, Messages, fit_history, validate_messages
from serving.errors import (Busy, InputTooLong, InvalidInput, ModelUnavailable, ServingError, UnknownModel,
                            validation_message)
from serving.generation import GenerationSettings
from serving.personas import Persona, PersonaBook, load_personas
from serving.pool import Cancelled, ModelPool
from serving.prompt import TemplateError
from serving.registry import HubSource, ModelEntry, Registry, UnknownModelId
from serving.resolve import Progress, Resolver

__all__ = [
    "Busy", "ChatRequest", "ContextUsage", "Engine", "GenerationStats", "InputTooLong", "InvalidInput", "ModelStatus",
    "AnswerCheck", "ModelUnavailable", "ServingError", "Source", "StreamEvent", "UnknownModel",
]
log = logging.getLogger(__name__)
_MAX_CONVERSATIONS = 2000
_MAX_STOPS, _MAX_STOP_CHARS = 4, 64
_CHARS_PER_TOKEN = 4  # a remote model's context use is estimated, having no tokenizer here
_FAILURE_TTL_S = 300.0  # a model that failed to resolve or load is offered again after this long
PREFIX_OWNER = SHARED_PREFIX
"""Conversation id prefix of the pre-read persona prefixes (`prefix:<persona id>`) a loaded model keeps as donors."""
_PREREAD = GenerationSettings(temperature=0.0, max_new_tokens=1)


@dataclass(frozen=True)
class ChatRequest:
    """One chat turn to generate: the whole visible history, ending with the user's message."""

    model_id: str
    messages: list[dict]
    settings: GenerationSettings
    conversation_id: str | None = None
    """Same id on every turn of one conversation: keeps its history cut (and KV prefix) stable."""
    response_format: dict | None = None
    """{"type": "json_object", "schema": {...}} constrains the answer with a llama.cpp grammar."""
    stop: tuple[str, ...] = ()
    """Texts that end the answer where they appear (not shown)."""
    persona_id: str | None = None
    """A persona (`personas/*.yaml`) that writes the system turn: its prompt, then the help-center passages and
    order records its knowledge and order lookup give the latest question. `messages` then hold no system message.
    None: `messages` are sent as given."""
    notes: tuple[Passage, ...] = ()
    """Passages of the visitor's own notes that the caller retrieved for this turn (`serving.context.notes`): the
    persona's system turn ends with them as plain text, and the answer lists them among its sources. Needs a
    persona."""


@dataclass(frozen=True)
class ContextUsage:
    """How much of the model's context a conversation takes."""

    used: int
    """Prompt tokens of the history that would be sent now (after any dropped turns)."""
    limit: int
    """Tokens one conversation may hold, prompt and answer together."""
    dropped: int
    """Earliest turns left out to fit."""
    reserve: int
    """Tokens kept free for the answer."""


@dataclass(frozen=True)
class GenerationStats:
    model_id: str
    quant: str
    source: str
    """The GGUF file that answered (its path), or "hub"/"local"/"package" when nothing was loaded."""
    revision: str | None
    sha256: str | None
    n_prompt_tokens: int
    n_tokens: int
    ttft_s: float
    """Seconds from the request to the first visible token, including any wait and model load."""
    tokens_per_s: float
    """Decode speed: tokens after the first, divided by the time since the first."""
    finish_reason: str
    """"stop" | "length" | "cancelled"."""
    dropped_turns: int
    """Turns left out to fit the context."""
    cached_prompt_tokens: int = 0
    """Prompt tokens already in the KV cache (an earlier turn, or a shared prefix), not read again."""
    sources: tuple[Source, ...] = ()
    """The help-center passages and order records the answer was given (a persona request's context)."""
    check: AnswerCheck | None = None
    """The answer's figures read against those sources (`serving.context.check`); None when it had none."""
    base_model: str | None = None
    """For an adapter entry: the registry id of the base it answered over (`source` is then its LoRA file)."""
    drafts: int = 1
    """Drafts written of this answer, the one shown chosen among them (`serving.context.drafts`)."""


@dataclass(frozen=True)
class StreamEvent:
    kind: str
    """"token" | "notice" | "queued" (no token yet: waiting for a free slot, or drafts being written; text says
    why and, for a queue, where and how long) | "done"."""
    text: str = ""
    stats: GenerationStats | None = None


@dataclass(frozen=True)
class ModelStatus:
    id: str
    display_name: str
    kind: str
    base_model: str | None
    available: bool
    reason: str | None
    quant: str = "Q4_K_M"
    loaded: bool = False


@dataclass(frozen=True)
class _Grounds:
    """What one answer was given to rest on: the request's context and the visitor's own words; and the start of
    the answer when the request continues one (the check reads the whole answer the visitor keeps)."""

    context: RequestContext
    asked: str = ""
    begun: str = ""
    question: str = ""
    """The latest question (with order numbers named before), as retrieval read it."""

    @classmethod
    def of(cls, context: RequestContext, request: ChatRequest) -> _Grounds:
        """Every user turn of `request` (a figure the visitor stated backs the same figure in the answer), and
        the answer it continues, if any."""
        messages = request.messages
        begun = messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else ""
        asked = [m["content"] for m in messages if m["role"] == "user"]
        return cls(context, "\n".join(asked), begun, question_of(asked))

    def check(self, answer: str) -> AnswerCheck | None:
        """`answer`'s figures read against the context and the visitor's messages; None without sources."""
        return check_answer(self.begun + answer, self.context.text, self.asked) if self.context.sources else None


@dataclass
class _ConversationState:
    dropped: int = 0
    noticed: bool = False


class Cancel:
    """A cancel flag of the engine's own, also set while the caller's event is: the engine may stop one answer
    (a stop text, a consumer gone) without touching an event the caller shares between several answers."""

    def __init__(self, caller: "threading.Event | Cancel | None" = None):
        self._own, self._caller = threading.Event(), caller

    def is_set(self) -> bool:
        return self._own.is_set() or (self._caller is not None and self._caller.is_set())

    def set(self) -> None:
        self._own.set()

    def wait(self, timeout: float) -> bool:
        return self._own.wait(timeout) or self.is_set()


def _prompt(model: LlamaCppModel, messages: Messages) -> list[int]:
    """Prompt ids of `messages`; a last assistant message is an answer to continue (its text ends the prompt).
    A conversation the model's chat template refuses (a `raise_exception` branch, or content it would rewrite)
    is the visitor's to change, said as such."""
    try:
        if messages[-1]["role"] == "assistant":
            return model.prompt_tokens(messages[:-1]) + model.tokenize(messages[-1]["content"], False)
        return model.prompt_tokens(messages)
    except TemplateError as err:
        raise InvalidInput(f"{model.entry.display_name} cannot take this conversation ({err}); "
                           "start a new conversation or pick another model.") from None


def _opening(model: LlamaCppModel, system: str) -> list[int]:
    """Prompt ids every new conversation with the system turn `system` starts with: that turn and the template's
    opening of the first user turn (what two different questions share), so a new conversation reads only its
    question and the template's ending (benchmarks/RESULTS-grounding.md: 21 tokens instead of 23 on SmolLM2)."""
    first, second = (model.prompt_tokens([{"role": "system", "content": system}, {"role": "user", "content": word}])
                     for word in ("Hi", "Yes"))
    return first[:common_prefix(first, second)]


def _draft_settings(settings: GenerationSettings, n: int) -> list[GenerationSettings]:
    """The settings of `n` drafts: the request's own first, then sampled ones (at least `DRAFT_TEMPERATURE`), each
    with its own seed (the request's seed plus its place, so a seeded request drafts the same way again)."""
    sampled = settings.merged(temperature=max(settings.temperature, DRAFT_TEMPERATURE))
    return [settings, *(sampled.merged(seed=(settings.seed + i) % 2**31 if settings.seed is not None else None)
                        for i in range(1, n))]


def _estimate(text: str) -> int:
    """Tokens of `text` for a remote model, whose tokenizer is not here: about four characters a token."""
    return len(text) // _CHARS_PER_TOKEN + 1


def _batches(events: queue.Queue, interval_s: float) -> Iterator[list[StreamEvent]]:
    """Group queued events (ended by None, or an exception to raise) into batches `interval_s` apart."""
    while True:
        batch, item = [], events.get()
        deadline = time.monotonic() + interval_s
        while isinstance(item, StreamEvent):
            batch.append(item)
            try:
                item = events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
        if batch:
            yield batch
        if item is None:
            return
        if isinstance(item, BaseException):
            raise item


class Engine:
    """Chat with registered models: catalog, streaming generation, one-shot completion."""

    def __init__(self, registry: Registry, settings: ServingSettings | None = None, loader: Loader | None = None,
                 personas: PersonaBook | None = None, context: ContextLayer | None = None):
        self.registry = registry
        self.settings = settings or ServingSettings.from_env()
        self.loader = loader or LlamaCppLoader()
        """Sizes and loads a GGUF entry; tests pass a fake one to check the engine without weights."""
        self.personas = personas if personas is not None else load_personas()
        """The personas a request may name (`ChatRequest.persona_id`)."""
        self.context = context
        """Knowledge and order lookup of the personas (built once at start-up); None: personas answer from their
        prompt alone and nothing is pre-read."""
        self.resolver = Resolver(registry, self.settings.cache_dir, self.settings.hub_probe_timeout_s,
                                 self.settings.hub_endpoint)
        self.pool = ModelPool(int(self.settings.ram_budget_mb * 2**20), self.settings.queue_timeout_s)
        self._conversations: OrderedDict[str, _ConversationState] = OrderedDict()
        self._failures: dict[str, tuple[str, float]] = {}  # model id -> (user message, when)
        self._lock = threading.Lock()

    # ---- catalog -------------------------------------------------------------------------
    def catalog(self) -> list[ModelStatus]:
        """Every registered model with whether it can be served now (and why not)."""
        return [self.status(model_id) for model_id in self.registry.ids()]

    def status(self, model_id: str) -> ModelStatus:
        entry = self._entry(model_id)
        found = self.resolver.availability(entry)
        available, reason = found.available, found.reason
        failure = self._failures.get(entry.id)
        if failure and time.monotonic() - failure[1] < _FAILURE_TTL_S:
            available, reason = False, failure[0]
        return ModelStatus(entry.id, entry.display_name, entry.kind, entry.base_model, available, reason,
                           entry.quant, entry.id in self.pool.loaded_ids())

    def default_model(self, page: str) -> str:
        """The first available of the registry's defaults for `page` ("support" / "study"), else the first
        available model, else the first id."""
        preferred = getattr(self.registry.defaults, page)
        ids = [s.id for s in self.catalog() if s.available]
        return next((mid for mid in preferred if mid in ids), ids[0] if ids else self.registry.ids()[0])

    # ---- loading -------------------------------------------------------------------------
    def prepare(self, model_id: str, progress: Progress | None = None, cancel: threading.Event | None = None) -> None:
        """Resolve and load `model_id` now (e.g. behind a progress bar) so the first answer starts fast."""
        entry = self._entry(model_id)
        if entry.source.remote is not None:
            return  # nothing to load here
        try:
            with self._use(entry, progress, cancel):
                pass
        except Cancelled:
            return

    def _use(self, entry: ModelEntry, progress: Progress | None, cancel: threading.Event | None):
        if entry.source.adapter is not None:
            return self._use_adapter(entry, progress, cancel)
        path_box: list[Path] = []

        def size() -> int:
            path_box.append(self._fetch(entry, progress))
            try:
                return self.loader.size(entry, path_box[0], self.settings)
            except (ValueError, RuntimeError, OSError) as err:  # llama.cpp cannot even read the header
                raise self._unloadable(entry, path_box[0], err) from err

        def load() -> LlamaCppModel:
            return self._load(entry, path_box[0], progress)

        return self.pool.use(entry.id, size, load, cancel)

    @contextlib.contextmanager
    def _use_adapter(self, entry: ModelEntry, progress: Progress | None,
                     cancel: threading.Event | None) -> Iterator[AdaptedModel]:
        """An adapter entry's model: its base held in the pool (loaded once for the base and all its adapters), the
        adapter loaded over it as a rider of the base (`ModelPool.use`'s `parent`)."""
        base = self.registry.get(entry.source.adapter.base)
        path_box: list[Path] = []

        def size() -> int:
            path_box.append(self._fetch(entry, progress))
            return self.loader.adapter_size(path_box[0])

        with self._use(base, progress, cancel) as base_model:
            with self.pool.use(entry.id, size, lambda: self._load(entry, path_box[0], progress, base_model), cancel,
                               parent=base.id) as model:
                yield model

    def _unloadable(self, entry: ModelEntry, path: Path, err: Exception) -> ModelUnavailable:
        """A visitor-safe "could not be loaded" (remembered as the model's failure); the log gets llama.cpp's words."""
        message = f"{entry.display_name} could not be loaded."
        self._failures[entry.id] = (message, time.monotonic())
        return ModelUnavailable(message, f"{entry.id}: llama.cpp failed to load {path}: {err}")

    def _fetch(self, entry: ModelEntry, progress: Progress | None) -> Path:
        try:
            path = self.resolver.fetch(entry, progress)
            self._failures.pop(entry.id, None)
            return path
        except ModelUnavailable as err:
            self._failures[entry.id] = (err.user_message, time.monotonic())
            raise

    def _load(self, entry: ModelEntry, path: Path, progress: Progress | None,
              base: LlamaCppModel | None = None) -> LlamaCppModel | AdaptedModel:
        """`entry`'s file loaded (over the loaded `base` for an adapter), its persona prefixes set reading."""
        if progress:
            progress(0.0, f"Loading {entry.display_name}")
        log.info("loading %s from %s (n_ctx=%d, n_threads=%d)", entry.id, path, entry.context_length,
                 self.settings.threads())
        start = time.perf_counter()
        try:
            if base is None:
                model = self.loader.load(entry, path, self.settings)
            else:
                model = self.loader.load_adapter(base, entry, path)
        except ServingError:
            raise
        except (ValueError, RuntimeError, OSError) as err:
            raise self._unloadable(entry, path, err) from err
        log.info("loaded %s in %.1fs", entry.id, time.perf_counter() - start)
        self._preread(model)
        if progress:
            progress(1.0, f"Loaded {entry.display_name}")
        return model

    def _preread(self, model: LlamaCppModel) -> None:
        """Start reading what every visitor of a grounded persona shares (its prompt, then its whole knowledge when
        that fits, else the passages' header; then the template's opening of the user turn, `_opening`) into a slot
        of the new `model`, as a one-token answer owned by
        `prefix:<persona>`: the scheduler then copies that prefix to a new conversation instead of reading it.

        One slot stays free for visitors (so the first persona's prefix is not the first thing they evict). The
        scheduler evicts the least recently used slot, and these donors are the oldest, so under load they give way
        to visitors' conversations, which hold the same prefixes by then. The first persona is read last (it stays
        longest)."""
        if self.context is None:
            return
        grounded = sorted((p for p in self.personas.personas.values() if self.context.grounds(p)),
                          key=lambda p: (p.position, p.id))
        count, budget = self._counter(model), self.context.settings.budget_tokens(model.n_ctx)
        for persona in reversed(grounded[: self.settings.slots - 1]):
            text = system_text(persona.system_prompt, self.context.prefix_text(persona, count, budget))
            try:
                model.submit(_opening(model, text), 1, _PREREAD, None, PREFIX_OWNER + persona.id, threading.Event())
            except (ServingError, TemplateError) as err:  # a template that refuses a system turn, a full queue
                log.warning("%s: the prefix of persona %s is not pre-read: %s", model.entry.id, persona.id, err)

    # ---- generation ----------------------------------------------------------------------
    def context_usage(self, request: ChatRequest) -> ContextUsage:
        """Tokens the request's history takes in its model's context (loading the model if needed)."""
        entry, request = self._validate(request)
        reserve = min(request.settings.max_new_tokens, entry.context_length // 4)
        if entry.source.remote is not None:  # no tokenizer here: about four characters a token
            request, _ = self._grounded(request, _estimate, entry.context_length)
            used = sum(len(m["content"]) for m in request.messages) // _CHARS_PER_TOKEN + 4 * len(request.messages)
            return ContextUsage(used, entry.context_length, 0, reserve)
        state = self._conversation(request.conversation_id)
        with self._use(entry, None, None) as model:
            request, _ = self._grounded(request, self._counter(model), model.n_ctx)
            tokens, _, dropped = self._fit(model, request, dataclasses.replace(state))
            return ContextUsage(len(tokens), model.n_ctx, dropped, reserve)

    def stream(self, request: ChatRequest, cancel: threading.Event | None = None,
               progress: Progress | None = None) -> Iterator[StreamEvent]:
        """Token events as they are generated, maybe a "notice", then one "done" with stats."""
        entry, request = self._validate(request)
        cancel = Cancel(cancel)  # the engine stops its own work without setting the caller's event
        started = time.perf_counter()
        if entry.source.remote is not None:
            yield from self._remote(entry, request, cancel, started)
            return
        try:
            with self._use(entry, progress, cancel) as model:
                yield from self._generate(model, request, cancel, started)
        except Cancelled:
            yield StreamEvent("done", stats=self._stats(entry, None, 0, 0, 0.0, 0.0, "cancelled", 0))

    def stream_batches(self, request: ChatRequest, cancel: threading.Event | None = None,
                       progress: Progress | None = None, interval_s: float = 0.05) -> Iterator[list[StreamEvent]]:
        """Like `stream`, but generation runs in its own thread and events come in batches.

        A consumer that is slow per update (a UI re-rendering the chat on every token) then never
        stalls the model: each batch holds what was generated since the last one, at most one
        batch per `interval_s`. Errors are raised here; closing this iterator cancels generation.
        """
        cancel = Cancel(cancel)
        events: queue.Queue = queue.Queue()
        context = contextvars.copy_context()  # so progress callbacks see the caller's context

        def produce() -> None:
            try:
                for event in self.stream(request, cancel, progress):
                    events.put(event)
            except BaseException as err:  # handed to the consumer, which re-raises it
                events.put(err)
            events.put(None)

        threading.Thread(target=context.run, args=(produce,), daemon=True, name=f"generate-{request.model_id}").start()
        try:
            yield from _batches(events, interval_s)
        finally:
            cancel.set()  # no-op when finished; stops the model when the consumer gave up early

    def complete(self, request: ChatRequest, cancel: threading.Event | None = None) -> tuple[str, GenerationStats]:
        """The whole answer at once (notices are dropped)."""
        parts, stats = [], None
        for event in self.stream(request, cancel):
            if event.kind == "token":
                parts.append(event.text)
            elif event.kind == "done":
                stats = event.stats
        return "".join(parts), stats

    def forget(self, conversation_id: str) -> None:
        """Drop everything the engine holds of a conversation: its history cut and, in every loaded model, its
        KV cache slot and RAM save (a deleted or cleared chat, a one-off API call)."""
        self.history_changed(conversation_id)
        for model in self.pool.loaded_models():
            forget = getattr(model, "forget", None)
            if forget is not None:
                forget(conversation_id)

    def history_changed(self, conversation_id: str) -> None:
        """The conversation's history was edited: its cut starts again (its KV prefix stays, for reuse)."""
        with self._lock:
            self._conversations.pop(conversation_id, None)

    def _entry(self, model_id: str) -> ModelEntry:
        try:
            return self.registry.get(model_id)
        except UnknownModelId:
            raise UnknownModel(f"Unknown model {model_id!r}; choose one of: {', '.join(self.registry.ids())}.")

    def check(self, request: ChatRequest) -> ChatRequest:
        """The request with checked settings, or the ServingError `stream` would raise: for a page to ask first."""
        return self._validate(request)[1]

    def _validate(self, request: ChatRequest) -> tuple[ModelEntry, ChatRequest]:
        """The request's registry entry and the request with checked settings, or a ServingError."""
        entry = self._entry(request.model_id)
        if not isinstance(request.settings, GenerationSettings):
            try:
                settings = GenerationSettings.model_validate(request.settings)
            except ValidationError as err:
                names = {name: name for name in GenerationSettings.model_fields}  # the API's own field names
                raise InvalidInput(validation_message(err, "Invalid generation setting", names) + ".") from None
            request = dataclasses.replace(request, settings=settings)
        limits = self.settings
        problem = validate_messages(request.messages, limits.max_message_chars, limits.max_history_messages,
                                    limits.max_history_chars)
        if problem:
            raise InvalidInput(f"Invalid message: {problem}.")
        if not isinstance(request.stop, (tuple, list)) or len(request.stop) > _MAX_STOPS or not all(
                isinstance(t, str) and 0 < len(t) <= _MAX_STOP_CHARS for t in request.stop):
            raise InvalidInput(f"Invalid stop: give at most {_MAX_STOPS} texts of 1–{_MAX_STOP_CHARS} characters.")
        fmt = request.response_format
        if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "json_object"):
            raise InvalidInput('Invalid response_format: only {"type": "json_object", "schema": ...} is supported.')
        if request.persona_id is not None:
            self._persona(request.persona_id)
            if any(m["role"] == "system" for m in request.messages):
                raise InvalidInput("Invalid message: with a persona, the persona writes the system message; "
                                   "send only user and assistant messages.")
        if request.notes and (request.persona_id is None or not isinstance(request.notes, (tuple, list))
                              or not all(isinstance(p, Passage) for p in request.notes)):
            raise InvalidInput("Invalid notes: give passages of notes (serving.context.notes) with a persona.")
        return entry, request

    def _persona(self, persona_id: object) -> Persona:
        persona = self.personas.personas.get(persona_id) if isinstance(persona_id, str) else None
        if persona is None:
            raise InvalidInput(f"Unknown persona {persona_id!r}; choose one of: {', '.join(self.personas.personas)}.")
        return persona

    def _grounded(self, request: ChatRequest, count_tokens: Callable[[str], int],
                  n_ctx: int) -> tuple[ChatRequest, RequestContext]:
        """The request with its persona's system turn first (the prompt, then the context the latest question
        gets within the context layer's share of `n_ctx`), and that context; a request without a persona as is."""
        if request.persona_id is None:
            return request, RequestContext()
        persona = self._persona(request.persona_id)
        context = RequestContext()
        if self.context is not None:
            asked = [m["content"] for m in request.messages if m["role"] == "user"]
            context = self.context.for_request(persona, question_of(asked), count_tokens,
                                               self.context.settings.budget_tokens(n_ctx))
        context = with_notes(context, request.notes)
        system = {"role": "system", "content": system_text(persona.system_prompt, context.text)}
        return dataclasses.replace(request, messages=[system, *request.messages]), context

    @staticmethod
    def _counter(model: LlamaCppModel) -> Callable[[str], int]:
        """Tokens of a text by `model`'s tokenizer, as plain text (how the context goes into a prompt)."""
        return lambda text: len(model.tokenize(text, False))

    def _conversation(self, conversation_id: str | None) -> _ConversationState:
        if conversation_id is None:
            return _ConversationState()
        with self._lock:
            state = self._conversations.pop(conversation_id, None) or _ConversationState()
            self._conversations[conversation_id] = state
            while len(self._conversations) > _MAX_CONVERSATIONS:
                self._conversations.popitem(last=False)
            return state

    def _fit(self, model: LlamaCppModel, request: ChatRequest, state: _ConversationState) -> tuple[list[int], int, int]:
        """(prompt tokens, max new tokens, turns dropped) for a request that fits the context."""
        wanted = request.settings.max_new_tokens
        reserve = min(wanted, model.n_ctx // 4)
        cache: dict[int, list[int]] = {}

        def count(messages: Messages) -> int:
            cache[len(messages)] = _prompt(model, messages)
            return len(cache[len(messages)])

        trimmed = fit_history(request.messages, count, model.n_ctx - reserve, state.dropped)
        if trimmed is None:
            raise InputTooLong(
                f"This message is too long for {model.entry.display_name} (context {model.n_ctx} tokens); "
                "please shorten it.")
        state.dropped = trimmed.dropped
        tokens = cache.get(len(trimmed.messages)) or _prompt(model, trimmed.messages)
        return tokens, min(wanted, model.n_ctx - len(tokens)), trimmed.dropped

    def _generate(self, model: LlamaCppModel, request: ChatRequest, cancel: threading.Event,
                  started: float) -> Iterator[StreamEvent]:
        state = self._conversation(request.conversation_id)
        request, context = self._grounded(request, self._counter(model), model.n_ctx)
        tokens, max_tokens, dropped = self._fit(model, request, state)
        if context.notice:
            yield StreamEvent("notice", context.notice)
        if dropped and not state.noticed:
            state.noticed = True
            yield StreamEvent("notice", f"The earliest {dropped} messages were left out so the conversation "
                                        f"fits {model.entry.display_name}'s context window.")
        grounds = _Grounds.of(context, request)
        drafts = self._drafts(model, request, context)
        if drafts > 1:
            yield from self._drafted(model, request, (tokens, max_tokens), drafts, cancel, started, dropped, grounds)
            return
        job = model.submit(tokens, max_tokens, request.settings, request.response_format, request.conversation_id,
                           cancel)
        yield from self._relay(model.entry, model.path, job.results(), request.stop, cancel, started, dropped, grounds)

    def _drafts(self, model: LlamaCppModel, request: ChatRequest, context: RequestContext) -> int:
        """How many drafts to write of this answer: its persona's `drafts` when the answer has sources to be checked
        against (and no JSON format), within `max_drafts` and the model's free slots now, so that one visitor's
        drafts never queue behind each other or in front of another visitor; otherwise 1."""
        if request.persona_id is None or not context.sources or request.response_format is not None:
            return 1
        wanted = min(self._persona(request.persona_id).drafts, self.settings.max_drafts)
        return max(1, min(wanted, model.free_slots())) if wanted > 1 else 1

    def _drafted(self, model: LlamaCppModel, request: ChatRequest, prompt: tuple[list[int], int], n: int,
                 cancel: Cancel, started: float, dropped: int, grounds: _Grounds) -> Iterator[StreamEvent]:
        """`n` drafts of one answer decoded together (the first with the request's settings, the others sampled
        at `DRAFT_TEMPERATURE` or more with their own seeds), then the one `choose` picks, shown whole. Each draft
        stops on its own (its stop texts end only it), and one running past `draft_limit` of the first draft's
        length is cut and left out (the visitor would wait for the longest); the visitor's Stop ends them all and
        shows nothing."""
        yield StreamEvent("queued", f"Writing {n} drafts of the answer and checking them against the sources…")
        cancels = [Cancel(cancel) for _ in range(n)]
        try:
            jobs = self._submit_drafts(model, request, prompt, cancels)
            written = [self._written(model, jobs[0], request.stop, cancels[0], started, dropped, grounds)]
            limit = draft_limit(written[0][1].n_tokens)
            written += [self._written(model, job, request.stop, own, started, dropped, grounds, limit)
                        for job, own in zip(jobs[1:], cancels[1:])]
        finally:
            for own in cancels:
                own.set()
        n = len(written)
        if cancel.is_set():
            yield StreamEvent("done", stats=dataclasses.replace(written[0][1], n_tokens=0, finish_reason="cancelled",
                                                                check=None, drafts=n))
            return
        finished = [(text, stats) for text, stats in written if stats.finish_reason != "cancelled"]  # not cut
        best = choose([(text, stats.check) for text, stats in finished], grounds.context.text, grounds.question)
        text, stats = finished[best]
        if text:
            yield StreamEvent("token", text)
        yield StreamEvent("done", stats=dataclasses.replace(stats, ttft_s=time.perf_counter() - started, drafts=n))

    @staticmethod
    def _submit_drafts(model: LlamaCppModel, request: ChatRequest, prompt: tuple[list[int], int],
                       cancels: list[Cancel]) -> list:
        """The drafts' jobs, as many as the model takes: a draft after the first that finds the queue full (another
        visitor came in meanwhile) is left out, not the answer. The first keeps the conversation's KV cache."""
        jobs = []
        for i, (settings, own) in enumerate(zip(_draft_settings(request.settings, len(cancels)), cancels)):
            try:
                jobs.append(model.submit(*prompt, settings, request.response_format,
                                         request.conversation_id if i == 0 else None, own))
            except Busy:
                if not jobs:
                    raise
                break
        return jobs

    def _written(self, model: LlamaCppModel, job, stop: tuple[str, ...], cancel: Cancel, started: float,
                 dropped: int, grounds: _Grounds, limit: int | None = None) -> tuple[str, GenerationStats]:
        """One draft read to its end through `_relay` (stop texts, leak guard, check): its text and stats; a draft
        past `limit` visible pieces is cut there (its finish "cancelled")."""
        parts, stats = [], None
        for event in self._relay(model.entry, model.path, job.results(), stop, cancel, started, dropped, grounds):
            if event.kind == "token":
                parts.append(event.text)
                if limit is not None and len(parts) > limit:
                    cancel.set()
            elif event.kind == "done":
                stats = event.stats
        return "".join(parts), stats

    def _remote(self, entry: ModelEntry, request: ChatRequest, cancel: threading.Event,
                started: float) -> Iterator[StreamEvent]:
        request, context = self._grounded(request, _estimate, entry.context_length)
        if context.notice:
            yield StreamEvent("notice", context.notice)
        items = RemoteModel(entry).stream(request.messages, request.settings, request.stop,
                                          request.response_format, cancel)
        yield from self._relay(entry, None, items, request.stop, cancel, started, 0, _Grounds.of(context, request))

    def _relay(self, entry: ModelEntry, path: Path | None, items: Iterator, stop: tuple[str, ...],
               cancel: threading.Event, started: float, dropped: int,
               grounds: _Grounds | None = None) -> Iterator[StreamEvent]:
        """Stream events from a backend's items: queue notes, visible text (template tokens and stop texts
        held back), then "done" with the stats (and the answer's figures checked against what it was given)."""
        guard, first, done, shown = LeakGuard(stop), None, None, []
        try:
            for item in items:
                if isinstance(item, Queued):
                    yield StreamEvent("queued", f"Waiting for {entry.display_name}: position {item.position} in "
                                                f"the queue, about {item.wait_s:.0f} s.")
                elif isinstance(item, Piece):
                    text = guard.feed(item.text)
                    if text:
                        first = first or time.perf_counter()
                        shown.append(text)
                        yield StreamEvent("token", text)
                    if guard.stopped:
                        cancel.set()  # a stop text or template token: the backend stops at its next step
                else:
                    done = item
        finally:
            cancel.set()  # no-op once finished; frees the slot when the consumer leaves early
        finish = "stop" if guard.stopped else done.reason
        tail = guard.flush()
        if tail and finish != "cancelled":
            shown.append(tail)
            yield StreamEvent("token", tail)
        end = time.perf_counter()
        log.info("%s: %s after %d tokens (%d of %d prompt tokens cached)", entry.id, finish, done.n_tokens,
                 done.reused, done.n_prompt)
        first = first or end
        rate = (done.n_tokens - 1) / (end - first) if done.n_tokens > 1 and end > first else 0.0
        grounds = grounds or _Grounds(RequestContext())
        stats = self._stats(entry, path, done.n_prompt, done.n_tokens, first - started, rate, finish, dropped,
                            done.reused, grounds.context.sources)
        yield StreamEvent("done", stats=dataclasses.replace(stats, check=grounds.check("".join(shown))))

    def _stats(self, entry: ModelEntry, path: Path | None, n_prompt: int, n_tokens: int, ttft: float,
               rate: float, finish: str, dropped: int, cached: int = 0,
               sources: tuple[Source, ...] = ()) -> GenerationStats:
        file, adapter = entry.source.file, entry.source.adapter
        return GenerationStats(
            model_id=entry.id, quant=entry.quant, source=str(path) if path else entry.source.kind,
            revision=file.revision if isinstance(file, HubSource) else None, sha256=self.resolver.expected_sha(entry),
            n_prompt_tokens=n_prompt, n_tokens=n_tokens, ttft_s=ttft, tokens_per_s=rate,
            finish_reason=finish, dropped_turns=dropped, cached_prompt_tokens=cached, sources=sources,
            base_model=adapter.base if adapter else None)

    def close(self) -> None:
        self.pool.close()
