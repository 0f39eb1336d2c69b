"""The engine: the one API pages (and any CLI or server) use to chat with registered models.

It validates a `ChatRequest`, resolves and loads the model through the pool, renders the
conversation with the chat template embedded in the GGUF (llama-cpp-python's Jinja2
formatter), trims history that would overflow the context, and streams tokens with
cancel support. It never imports Gradio; visitor-safe messages travel in `ServingError`.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
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
from serving.conversation import MARKER_RE, LeakGuard, Messages, fit_history, validate_messages
from serving.errors import Busy, InputTooLong, InvalidInput, ModelUnavailable, ServingError, UnknownModel
from serving.generation import GenerationSettings
from serving.pool import Cancelled, ModelPool
from serving.prompt import TemplateError, prompt_tokens
from serving.registry import ModelEntry, Registry, UnknownModelId
from serving.resolve import Progress, Resolver

__all__ = [
    "Busy", "ChatRequest", "Engine", "GenerationStats", "InputTooLong", "InvalidInput", "ModelStatus",
    "ModelUnavailable", "ServingError", "StreamEvent", "UnknownModel",
]
log = logging.getLogger(__name__)
_KV_BYTES_PER_VALUE = 2  # llama.cpp's default f16 KV cache
_COMPUTE_OVERHEAD = 1.15  # compute buffers and allocator slack on top of weights + KV
_MAX_CONVERSATIONS = 2000
_FAILURE_TTL_S = 300.0  # a model that failed to resolve or load is offered again after this long
# Rendered once at load: a template whose content handling `serving.prompt` cannot follow is refused early.
_PROBE = [{"role": "system", "content": " S "}, {"role": "user", "content": "U\n"},
          {"role": "assistant", "content": "A"}, {"role": "user", "content": "V"}]


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


@dataclass(frozen=True)
class StreamEvent:
    kind: str
    """"token" | "notice" | "done"."""
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


@dataclass
class _ConversationState:
    dropped: int = 0
    noticed: bool = False


class LoadedModel:
    """A `llama_cpp.Llama` with what the engine derives from it once at load."""

    def __init__(self, entry: ModelEntry, path: Path, settings: ServingSettings):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.entry, self.path = entry, path
        self.llm = Llama(model_path=str(path), n_ctx=entry.context_length, n_threads=settings.threads(),
                         n_threads_batch=settings.threads(), n_batch=settings.n_batch, use_mmap=True,
                         verbose=False)
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            self.llm.close()
            raise ModelUnavailable(f"{entry.display_name} cannot chat: its file has no chat template.",
                                   f"{entry.id}: {path} has no tokenizer.chat_template metadata")
        model = self.llm._model
        self.formatter = Jinja2ChatFormatter(template=template, eos_token=model.token_get_text(self.llm.token_eos()),
                                             bos_token=model.token_get_text(self.llm.token_bos()))
        self.control_ids = frozenset(i for i in range(self.llm.n_vocab())
                                     if MARKER_RE.fullmatch(model.token_get_text(i) or ""))
        # Under a JSON grammar llama.cpp matches special tokens by their text, so a "<|reserved_...|>" could be
        # sampled inside a JSON string and end the answer early; ban every control token that does not end
        # generation.
        from llama_cpp import llama_vocab_is_eog

        self.grammar_bias = {i: float("-inf") for i in self.control_ids if not llama_vocab_is_eog(model.vocab, i)}
        self.n_ctx = self.llm.n_ctx()
        self.template_args = {"date_string": settings.template_date} if settings.template_date else {}
        self._check_template()

    def render(self, messages: Messages) -> str:
        """The prompt text of `messages` by the GGUF's own chat template (which writes the BOS itself)."""
        return self.formatter(messages=messages, **self.template_args).prompt

    def tokenize(self, text: str, special: bool) -> list[int]:
        """Token ids of `text`; `special` parses control-token text (template text only, never content)."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def prompt_tokens(self, messages: Messages) -> list[int]:
        """Token ids of `messages`, ready for generation: the template's markers are control tokens,
        what the messages say is plain text (`serving.prompt`)."""
        return prompt_tokens(self.render, messages, self.tokenize)

    def _check_template(self) -> None:
        try:
            self.prompt_tokens(_PROBE)
        except TemplateError as err:
            self.llm.close()
            raise ModelUnavailable(f"{self.entry.display_name} cannot chat safely: its chat template rewrites "
                                   "messages.", f"{self.entry.id}: {self.path}: {err}") from None

    def stops_after_control(self, input_ids, _logits) -> bool:
        """Stopping criterion: the previous token was a template token (e.g. a new header)."""
        return len(input_ids) > 0 and int(input_ids[-1]) in self.control_ids

    def close(self) -> None:
        self.llm.close()


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


def estimate_bytes(path: Path, n_ctx: int) -> int:
    """RAM a model needs: file size plus its f16 KV cache for `n_ctx`, plus compute slack."""
    import llama_cpp
    from llama_cpp._internals import LlamaModel

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True  # reads the header and vocabulary, not the weights
    header = LlamaModel(path_model=str(path), params=params, verbose=False)
    try:
        md = header.metadata()
    finally:
        header.close()
    arch = md.get("general.architecture", "llama")
    layers = int(md.get(f"{arch}.block_count", 0))
    heads = max(1, int(md.get(f"{arch}.attention.head_count", 1)))
    kv_heads = int(md.get(f"{arch}.attention.head_count_kv", heads))
    head_dim = int(md.get(f"{arch}.embedding_length", 0)) // heads
    kv = 2 * layers * n_ctx * head_dim * kv_heads * _KV_BYTES_PER_VALUE
    return int((path.stat().st_size + kv) * _COMPUTE_OVERHEAD)


class Engine:
    """Chat with registered models: catalog, streaming generation, one-shot completion."""

    def __init__(self, registry: Registry, settings: ServingSettings | None = None):
        self.registry = registry
        self.settings = settings or ServingSettings.from_env()
        self.resolver = Resolver(registry, self.settings.cache_dir, self.settings.hub_probe_timeout_s,
                                 self.settings.hub_endpoint)
        self.pool = ModelPool(int(self.settings.ram_budget_mb * 2**20), self.settings.max_queue,
                              self.settings.queue_timeout_s)
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
        try:
            with self._use(self._entry(model_id), progress, cancel):
                pass
        except Cancelled:
            return

    def _use(self, entry: ModelEntry, progress: Progress | None, cancel: threading.Event | None):
        path_box: list[Path] = []

        def size() -> int:
            path_box.append(self._fetch(entry, progress))
            try:
                return estimate_bytes(path_box[0], entry.context_length)
            except (ValueError, RuntimeError, OSError) as err:  # llama.cpp cannot even read the header
                raise self._unloadable(entry, path_box[0], err) from err

        def load() -> LoadedModel:
            return self._load(entry, path_box[0], progress)

        return self.pool.use(entry.id, size, load, cancel)

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

    def _load(self, entry: ModelEntry, path: Path, progress: Progress | None) -> LoadedModel:
        if progress:
            progress(0.0, f"Loading {entry.display_name}")
        log.info("loading %s from %s (n_ctx=%d, n_threads=%d)", entry.id, path, entry.context_length,
                 self.settings.threads())
        start = time.perf_counter()
        try:
            model = LoadedModel(entry, path, self.settings)
        except ServingError:
            raise
        except (ValueError, RuntimeError, OSError) as err:
            raise self._unloadable(entry, path, err) from err
        log.info("loaded %s in %.1fs", entry.id, time.perf_counter() - start)
        if progress:
            progress(1.0, f"Loaded {entry.display_name}")
        return model

    # ---- generation ----------------------------------------------------------------------
    def stream(self, request: ChatRequest, cancel: threading.Event | None = None,
               progress: Progress | None = None) -> Iterator[StreamEvent]:
        """Token events as they are generated, maybe a "notice", then one "done" with stats."""
        entry, request = self._validate(request)
        cancel = cancel or threading.Event()
        started = time.perf_counter()
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
        cancel = cancel or threading.Event()
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
        """Drop what the engine remembers about a conversation (its history cut)."""
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
                first = err.errors()[0]
                raise InvalidInput(f"Invalid generation setting {'.'.join(map(str, first['loc']))}: "
                                   f"{first['msg']}.") from None
            request = dataclasses.replace(request, settings=settings)
        limits = self.settings
        problem = validate_messages(request.messages, limits.max_message_chars, limits.max_history_messages,
                                    limits.max_history_chars)
        if problem:
            raise InvalidInput(f"Invalid message: {problem}.")
        fmt = request.response_format
        if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "json_object"):
            raise InvalidInput('Invalid response_format: only {"type": "json_object", "schema": ...} is supported.')
        return entry, request

    def _conversation(self, conversation_id: str | None) -> _ConversationState:
        if conversation_id is None:
            return _ConversationState()
        with self._lock:
            state = self._conversations.pop(conversation_id, None) or _ConversationState()
            self._conversations[conversation_id] = state
            while len(self._conversations) > _MAX_CONVERSATIONS:
                self._conversations.popitem(last=False)
            return state

    def _fit(self, model: LoadedModel, request: ChatRequest, state: _ConversationState) -> tuple[list[int], int, int]:
        """(prompt tokens, max new tokens, turns dropped) for a request that fits the context."""
        wanted = request.settings.max_new_tokens
        reserve = min(wanted, model.n_ctx // 4)
        cache: dict[int, list[int]] = {}

        def count(messages: Messages) -> int:
            cache[len(messages)] = model.prompt_tokens(messages)
            return len(cache[len(messages)])

        trimmed = fit_history(request.messages, count, model.n_ctx - reserve, state.dropped)
        if trimmed is None:
            raise InputTooLong(
                f"This message is too long for {model.entry.display_name} (context {model.n_ctx} tokens); "
                "please shorten it.")
        state.dropped = trimmed.dropped
        tokens = cache.get(len(trimmed.messages)) or model.prompt_tokens(trimmed.messages)
        return tokens, min(wanted, model.n_ctx - len(tokens)), trimmed.dropped

    def _generate(self, model: LoadedModel, request: ChatRequest, cancel: threading.Event,
                  started: float) -> Iterator[StreamEvent]:
        from llama_cpp import StoppingCriteriaList

        state = self._conversation(request.conversation_id)
        tokens, max_tokens, dropped = self._fit(model, request, state)
        if dropped and not state.noticed:
            state.noticed = True
            yield StreamEvent("notice", f"The earliest {dropped} messages were left out so the conversation "
                                        f"fits {model.entry.display_name}'s context window.")
        s = request.settings
        chunks = model.llm.create_completion(
            prompt=tokens, max_tokens=max_tokens, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
            repeat_penalty=s.repeat_penalty, seed=s.seed, stream=True, grammar=self._grammar(request),
            logit_bias=model.grammar_bias if request.response_format else None,
            stopping_criteria=StoppingCriteriaList([model.stops_after_control]))
        guard, n_tokens, first, finish = LeakGuard(), 0, None, "stop"
        try:
            for chunk in chunks:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                choice = chunk["choices"][0]
                n_tokens += choice.get("finish_reason") is None  # the final chunk only carries the reason
                text = guard.feed(choice["text"])
                if text:
                    first = first or time.perf_counter()
                    yield StreamEvent("token", text)
                if guard.stopped:
                    break
                finish = choice.get("finish_reason") or finish
        finally:
            chunks.close()
        tail = guard.flush()
        if tail and finish != "cancelled":
            yield StreamEvent("token", tail)
        end = time.perf_counter()
        log.info("%s: %s after %d tokens", model.entry.id, finish, n_tokens)
        first = first or end
        rate = (n_tokens - 1) / (end - first) if n_tokens > 1 and end > first else 0.0
        yield StreamEvent("done", stats=self._stats(model.entry, model.path, len(tokens), n_tokens,
                                                    first - started, rate, finish, dropped))

    def _grammar(self, request: ChatRequest):
        if request.response_format is None:
            return None
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        schema = request.response_format.get("schema")
        try:
            if schema is None:
                return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
            return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except (ValueError, TypeError, RuntimeError) as err:
            raise InvalidInput(f"Invalid response_format schema: {err}.") from None

    def _stats(self, entry: ModelEntry, path: Path | None, n_prompt: int, n_tokens: int, ttft: float,
               rate: float, finish: str, dropped: int) -> GenerationStats:
        hub = entry.source.hub
        return GenerationStats(
            model_id=entry.id, quant=entry.quant, source=str(path) if path else entry.source.kind,
            revision=hub.revision if hub else None, sha256=self.resolver.expected_sha(entry),
            n_prompt_tokens=n_prompt, n_tokens=n_tokens, ttft_s=ttft, tokens_per_s=rate,
            finish_reason=finish, dropped_turns=dropped)

    def close(self) -> None:
        self.pool.close()
