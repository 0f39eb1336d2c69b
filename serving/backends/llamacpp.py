"""The in-process llama.cpp backend: one GGUF model, its chat template, and a batching scheduler.

`LlamaCppModel` loads the weights once, derives what the engine needs from the file (the chat
template, control tokens, the tokens that end an answer) and owns a `Scheduler`
(`serving.backends.batched`) that decodes every conversation of this model in one llama.cpp
context. Prompts are token ids built by `serving.prompt` (template markers are control tokens, what
visitors typed is plain text). `AdaptedModel` serves a LoRA adapter over a loaded model: the same weights,
tokenizer, template and scheduler, its jobs decoded with the adapter applied (docs/adapters.md). Knows
nothing of the registry's other sources, pools or Gradio.
"""

from __future__ import annotations

import ctypes
import json
import threading
from array import array
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

import jinja2
import llama_cpp as ll
from llama_cpp import _internals as internals
from llama_cpp._logger import set_verbose
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

from serving.backends.batched import Job, Lora, Scheduler
from serving.config import ServingSettings
from serving.conversation import MARKER_RE, Messages
from serving.errors import InvalidInput, ModelUnavailable
from serving.generation import GenerationSettings
from serving.prompt import TemplateError, prompt_tokens
from serving.registry import ModelEntry

_KV_BYTES_PER_VALUE = 2  # llama.cpp's default f16 KV cache
_COMPUTE_OVERHEAD = 1.15  # compute buffers and allocator slack on top of weights + KV
FLASH_ATTN = {"off": ll.LLAMA_FLASH_ATTN_TYPE_DISABLED, "on": ll.LLAMA_FLASH_ATTN_TYPE_ENABLED,
              "auto": ll.LLAMA_FLASH_ATTN_TYPE_AUTO}
"""`ServingSettings.flash_attn` -> llama.cpp's context parameter."""
PENALTY_LAST_N = 64  # llama-cpp-python's default window for the repetition penalty
_MIN_P = 0.05  # llama-cpp-python's create_completion default, kept so answers read as before
# llama-cpp-python's JSON-schema converter lets raw control characters into strings, which JSON forbids
_LOOSE_JSON_CHAR, _STRICT_JSON_CHAR = r'char ::= [^"\\]', r'char ::= [^"\\\x7F\x00-\x1F]'
# Texts at least this long are tokenized once and remembered: a persona's prompt and whole help center are the same
# text on every request of that persona, and the engine tokenizes it three times per request (retrieval's budget check,
# the context layer's fit, the prompt): ~2 ms each for SmolLM2's 1,500-token prefix (benchmarks/RESULTS-grounding.md).
_MEMO_MIN_CHARS = 256
_MEMO_ENTRIES = 64  # a few texts per persona, and long history turns (each turn tokenizes the history again)
# Rendered once at load: a template whose content handling `serving.prompt` cannot follow is refused early.
_PROBE = [{"role": "system", "content": " S "}, {"role": "user", "content": "U\n"},
          {"role": "assistant", "content": "A"}, {"role": "user", "content": "V"}]


class Sampler(internals.LlamaSampler):
    """A llama.cpp sampler chain that samples from row `index` of the last batch's logits."""

    def sample_at(self, ctx, index: int) -> int:
        return ll.llama_sampler_sample(self.sampler, ctx, index)


def json_grammar(response_format: dict | None) -> LlamaGrammar | None:
    """The llama.cpp grammar of a `{"type": "json_object", "schema": ...}` request (any JSON without a schema)."""
    if response_format is None:
        return None
    schema = response_format.get("schema")
    try:
        if schema is None:
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        gbnf = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)._grammar
        return LlamaGrammar.from_string(gbnf.replace(_LOOSE_JSON_CHAR, _STRICT_JSON_CHAR), verbose=False)
    except (ValueError, TypeError, RuntimeError) as err:
        raise InvalidInput(f"Invalid response_format schema: {err}.") from None


def render_chat(formatter: Jinja2ChatFormatter, messages: Messages, **template_args) -> str:
    """The prompt text of `messages` by a GGUF chat template; a template that refuses them (its `raise_exception`
    branch, e.g. "roles must alternate", which llama-cpp-python raises as ValueError) raises `TemplateError`."""
    try:
        return formatter(messages=messages, **template_args).prompt
    except (ValueError, jinja2.TemplateError) as err:
        raise TemplateError(f"its chat template refused it: {err}") from None


def kv_cells(entry: ModelEntry, settings: ServingSettings) -> int:
    """KV cache cells of one loaded model: a full context for each of its slots."""
    return entry.context_length * settings.slots


def estimate_bytes(path: Path, n_ctx: int) -> int:
    """RAM a model needs: file size plus its f16 KV cache for `n_ctx` cells, plus compute slack."""
    params = ll.llama_model_default_params()
    params.vocab_only = True  # reads the header and vocabulary, not the weights
    header = internals.LlamaModel(path_model=str(path), params=params, verbose=False)
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


def load_lora(model: internals.LlamaModel, entry: ModelEntry, path: Path, base: ModelEntry) -> Lora:
    """`entry`'s LoRA GGUF at `path` loaded over `model` (`base`'s weights), or ModelUnavailable saying why not.

    Checked by the pointer's truth: llama_adapter_lora_init returns NULL for a file it refuses (llama-adapter.cpp
    catches its exception: "failed to apply lora adapter"), and ctypes hands that back as a NULL pointer object,
    never None (llama-cpp-python 0.3.36's own `Llama(lora_path=)` tests `is None` and serves the bare base).
    """
    pointer = ll.llama_adapter_lora_init(model.model, str(path).encode("utf-8"))
    if not pointer:
        raise ModelUnavailable(
            f"{entry.display_name} is not available: its LoRA adapter does not fit {base.display_name}.",
            f"{entry.id}: llama.cpp refused the LoRA adapter {path} over {base.id} (an adapter of another model, "
            "or tensors whose names, shapes or ranks do not fit this base; llama.cpp's log line names which)")
    return Lora(entry.id, pointer, entry.source.adapter.scale)


class LlamaCppModel:
    """A GGUF model loaded by llama.cpp, serving up to `settings.slots` conversations at once."""

    def __init__(self, entry: ModelEntry, path: Path, settings: ServingSettings):
        self.entry, self.path = entry, path
        self._lock = threading.Lock()  # adapters are freed by whoever comes first: their model, or their release
        self._memo: OrderedDict[tuple[str, bool], array] = OrderedDict()  # long texts' ids (`tokenize`), LRU
        self._memo_lock = threading.Lock()  # requests tokenize on their own threads
        self._closed = False
        set_verbose(False)  # llama.cpp's own log: errors only (the pool logs loads)
        params = ll.llama_model_default_params()
        params.use_mmap = True
        self.model = internals.LlamaModel(path_model=str(path), params=params, verbose=False)
        try:
            self._derive(settings)
            self._check_template()
        except BaseException:
            self.model.close()
            raise
        self.ctx = internals.LlamaContext(model=self.model, params=self._context_params(settings), verbose=False)
        self.scheduler = Scheduler(self.ctx.ctx, self.piece, settings.slots, settings.n_batch,
                                   settings.prefill_chunk, settings.max_queue, settings.queue_timeout_s,
                                   int(settings.kv_ram_mb * 2**20), entry.id)

    def _derive(self, settings: ServingSettings) -> None:
        template = self.model.metadata().get("tokenizer.chat_template")
        if not template:
            raise ModelUnavailable(f"{self.entry.display_name} cannot chat: its file has no chat template.",
                                   f"{self.entry.id}: {self.path} has no tokenizer.chat_template metadata")
        model, vocab = self.model, self.model.vocab
        self.formatter = Jinja2ChatFormatter(template=template, eos_token=model.token_get_text(model.token_eos()),
                                             bos_token=model.token_get_text(model.token_bos()))
        self.n_vocab = model.n_vocab()
        self.control_ids = frozenset(i for i in range(self.n_vocab)
                                     if MARKER_RE.fullmatch(model.token_get_text(i) or ""))
        eog = frozenset(i for i in range(self.n_vocab) if ll.llama_vocab_is_eog(vocab, i))
        self.stop_ids = self.control_ids | eog
        # Under a JSON grammar llama.cpp matches special tokens by their text, so a "<|reserved_...|>" could be
        # sampled inside a JSON string and end the answer early; ban every control token that does not end
        # generation.
        self.grammar_bias = {i: float("-inf") for i in self.control_ids - eog}
        self.n_ctx = self.entry.context_length
        """Tokens one conversation may hold (prompt + answer)."""
        self.template_args = {"date_string": settings.template_date} if settings.template_date else {}

    def _context_params(self, settings: ServingSettings):
        params = ll.llama_context_default_params()
        params.n_ctx = kv_cells(self.entry, settings)
        params.n_batch = params.n_ubatch = settings.n_batch
        params.n_seq_max = settings.slots
        params.kv_unified = False  # one KV stream per slot: an answer does not depend on who else decodes
        params.n_threads = params.n_threads_batch = settings.threads()
        params.flash_attn_type = FLASH_ATTN[settings.flash_attn]
        return params

    # ---- prompts ---------------------------------------------------------------------------
    def render(self, messages: Messages) -> str:
        """The prompt text of `messages` by the GGUF's own chat template (which writes the BOS itself)."""
        return render_chat(self.formatter, messages, **self.template_args)

    def tokenize(self, text: str, special: bool) -> list[int]:
        """Token ids of `text`; `special` parses control-token text (template text only, never content). A text of
        `_MEMO_MIN_CHARS` or more is tokenized once while it is among the `_MEMO_ENTRIES` last used (the same ids:
        tokenizing is a pure function of the text); every call gets a list of its own."""
        if len(text) < _MEMO_MIN_CHARS:
            return self.model.tokenize(text.encode("utf-8"), add_bos=False, special=special)
        key = (text, special)
        with self._memo_lock:
            ids = self._memo.get(key)
            if ids is not None:
                self._memo.move_to_end(key)
                return ids.tolist()
        ids = array("i", self.model.tokenize(text.encode("utf-8"), add_bos=False, special=special))
        with self._memo_lock:
            self._memo[key] = ids
            while len(self._memo) > _MEMO_ENTRIES:
                self._memo.popitem(last=False)
        return ids.tolist()

    def prompt_tokens(self, messages: Messages) -> list[int]:
        """Token ids of `messages`, ready for generation: the template's markers are control tokens,
        what the messages say is plain text (`serving.prompt`)."""
        return prompt_tokens(self.render, messages, self.tokenize)

    def piece(self, token: int) -> bytes:
        """The bytes token `token` stands for (control tokens give none)."""
        buf = ctypes.create_string_buffer(64)
        n = ll.llama_token_to_piece(self.model.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = ll.llama_token_to_piece(self.model.vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n]

    def _check_template(self) -> None:
        try:
            self.prompt_tokens(_PROBE)
        except TemplateError as err:
            raise ModelUnavailable(f"{self.entry.display_name} cannot chat safely: its chat template rewrites "
                                   "messages.", f"{self.entry.id}: {self.path}: {err}") from None

    # ---- generation ------------------------------------------------------------------------
    def sampler(self, settings: GenerationSettings, grammar=None) -> Sampler:
        """A fresh sampler chain for one answer (with `grammar`, control tokens that do not end it are banned;
        with `ignore_eos`, every token that would end it)."""
        chain = Sampler()
        banned = {i: float("-inf") for i in self.stop_ids} if settings.ignore_eos else {}
        if grammar is not None:
            banned |= self.grammar_bias
        if banned:
            chain.add_logit_bias(self.n_vocab, banned)
        chain.add_penalties(self.n_vocab, PENALTY_LAST_N, settings.repeat_penalty, 0.0, 0.0)
        if grammar is not None:
            chain.add_grammar(self.model, grammar)
        if settings.temperature == 0.0:
            chain.add_greedy()
            return chain
        chain.add_top_k(settings.top_k)
        chain.add_top_p(settings.top_p, 1)
        chain.add_min_p(_MIN_P, 1)
        chain.add_temp(settings.temperature)
        chain.add_dist(ll.LLAMA_DEFAULT_SEED if settings.seed is None else settings.seed)
        return chain

    def submit(self, prompt: list[int], max_tokens: int, settings: GenerationSettings, response_format: dict | None,
               conversation_id: str | None, cancel: threading.Event, adapter: Lora | None = None) -> Job:
        """Start an answer to `prompt` (constrained to JSON by `response_format`, see `json_grammar`; decoded with
        the LoRA `adapter` applied, if any); read it from the returned job's `results()`."""
        sampler = self.sampler(settings, json_grammar(response_format))
        job = Job(prompt, max_tokens, sampler, self.stop_ids, cancel, conversation_id, adapter)
        try:
            return self.scheduler.submit(job)
        except BaseException:
            job.sampler.close()
            raise

    def forget(self, conversation_id: str) -> None:
        """Drop the conversation's KV (its slot and its RAM save)."""
        self.scheduler.forget(conversation_id)

    # ---- adapters --------------------------------------------------------------------------
    def adapter(self, entry: ModelEntry, path: Path) -> "AdaptedModel":
        """`entry` served as the LoRA GGUF at `path` over these weights (loaded on the decode thread: see
        `Scheduler.call`)."""
        lora = self.scheduler.call(lambda: load_lora(self.model, entry, path, self.entry))
        return AdaptedModel(self, entry, path, lora)

    def release(self, lora: Lora) -> None:
        """Free an adapter of this model: on the decode thread while it runs, here once it stopped, not at all once
        the model is closed (llama.h: "loaded adapters that are not manually freed will be freed when the
        associated model is deleted")."""
        with self._lock:
            if self._closed:
                return
            try:
                self.scheduler.drop_adapter(lora)
            except ModelUnavailable:  # the decode thread stopped: nothing decodes any more
                ll.llama_set_adapters_lora(self.ctx.ctx, None, 0, None)
                lora.free()

    def free_slots(self) -> int:
        """How many answers could start decoding now (the engine writes drafts only into free slots)."""
        return self.scheduler.free_slots()

    @property
    def alive(self) -> bool:
        return self.scheduler.alive

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self.scheduler.close()
        self.ctx.close()
        self.model.close()


class AdaptedModel:
    """A registry entry served as a LoRA adapter over a loaded `LlamaCppModel`: the base's weights, tokenizer,
    chat template, context and scheduler (every attribute not defined here is the base's), its answers decoded with
    the adapter applied. Closing it frees the adapter, not the base."""

    def __init__(self, base: LlamaCppModel, entry: ModelEntry, path: Path, lora: Lora):
        self.base, self.entry, self.path, self.lora = base, entry, path, lora
        self._closed = False

    def __getattr__(self, name: str):
        return getattr(self.base, name)

    def submit(self, prompt: list[int], max_tokens: int, settings: GenerationSettings, response_format: dict | None,
               conversation_id: str | None, cancel: threading.Event) -> Job:
        return self.base.submit(prompt, max_tokens, settings, response_format, conversation_id, cancel, self.lora)

    @property
    def alive(self) -> bool:
        """False once closed, or once its base stopped (the pool then loads it again over the base's new load)."""
        return not self._closed and self.base.alive

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.base.release(self.lora)


class Loader(Protocol):
    """How the engine sizes and loads a model file (the pool budgets with `size`), and an adapter over a loaded one."""

    def size(self, entry: ModelEntry, path: Path, settings: ServingSettings) -> int: ...

    def load(self, entry: ModelEntry, path: Path, settings: ServingSettings) -> LlamaCppModel: ...

    def adapter_size(self, path: Path) -> int: ...

    def load_adapter(self, base: LlamaCppModel, entry: ModelEntry, path: Path) -> AdaptedModel: ...


class LlamaCppLoader:
    """The real loader: llama.cpp reads the GGUF."""

    def size(self, entry: ModelEntry, path: Path, settings: ServingSettings) -> int:
        """Weights, KV cache and compute slack, plus the RAM its scheduler may fill with saved KV states."""
        return estimate_bytes(path, kv_cells(entry, settings)) + int(settings.kv_ram_mb * 2**20)

    def load(self, entry: ModelEntry, path: Path, settings: ServingSettings) -> LlamaCppModel:
        return LlamaCppModel(entry, path, settings)

    def adapter_size(self, path: Path) -> int:
        """RAM of a LoRA GGUF over its base: its tensors, as the file holds them (llama.cpp copies them into a buffer
        of their own size: llama-adapter.cpp "LoRA buffer size"). The base's weights and KV are the base's."""
        return path.stat().st_size

    def load_adapter(self, base: LlamaCppModel, entry: ModelEntry, path: Path) -> AdaptedModel:
        return base.adapter(entry, path)
