"""One prompt through several models: 2–4 panes side by side (`run_panes`), or the blind arena's pair (`run_pair`).

Fairness: every pane gets the same messages (so the same chat-template rendering), the same
settings and the same seed (drawn once when the visitor leaves it empty). Side by side, the
panes stream **at the same time**, each its own engine request, so the batching scheduler
serves them together (two panes on one model share its slots); their timings are then
measured under each other's load, and RSS, being the process's, is reported per pane as the
process's peak while that pane ran. The blind arena runs its pair **sequentially**, A then B,
so each model has the CPU to itself. Models are loaded before any run, so time to first token
excludes loading. Provenance: when a pane finishes, the model id, source and sha256 the engine
reports are checked against the registry entry shown in that pane; a mismatch (a "base" pane
silently answered by the fine-tune) raises `ProvenanceError` and the run's answers are dropped.
Each pane keeps its own history. Knows nothing of Gradio.
"""

from __future__ import annotations

import queue
import random
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from serving.cpu import process_rss_mib
from serving.engine import Cancel, ChatRequest, Engine, GenerationStats
from serving.errors import InvalidInput, ServingError
from serving.generation import GenerationSettings
from serving.registry import HubSource, Registry

RUN_ORDER_NOTE = ("Answers run one after the other (A, then B) so each model has the CPU to itself: "
                  "same prompt, settings and seed for both.")
PANES_NOTE = ("All panes stream at the same time through the batching scheduler (panes on one model share its "
              "slots): same prompt, settings and seed for every pane. TTFT and tokens/s are each pane's own, measured "
              "while the others run; RSS is the whole process's (models and panes share it), its peak while that "
              "pane ran.")
MIN_PANES, MAX_PANES = 2, 4
PANE_LETTERS = "ABCD"
Turns = tuple[dict, ...]


class ProvenanceError(ServingError):
    """The answer came from a different model or file than the one the pane shows."""


@dataclass(frozen=True)
class PaneSource:
    """What the registry says a pane's model is: shown before the run, checked after it."""

    model_id: str
    display_name: str
    source_file: str
    """GGUF file name (hub `repo/filename` or local file name); an adapter's LoRA file."""
    revision: str | None
    sha256: str | None
    base_model: str | None = None
    """The registry id of the base an adapter entry rides on (None for a model's own file)."""


def pane_source(registry: Registry, model_id: str) -> PaneSource:
    entry = registry.get(model_id)
    file, remote, adapter = entry.source.file, entry.source.remote, entry.source.adapter
    base = adapter.base if adapter else None
    if remote is not None:
        return PaneSource(entry.id, entry.display_name, f"{remote.model} (remote)", None, None)
    if isinstance(file, HubSource):
        return PaneSource(entry.id, entry.display_name, f"{file.repo}/{file.filename}", file.revision, file.sha256,
                          base)
    return PaneSource(entry.id, entry.display_name, PurePosixPath(file.path).name, None, file.sha256, base)


def check_provenance(registry: Registry, requested_id: str, stats: GenerationStats) -> None:
    """Refuse an answer whose reported model id, source, sha256 or base is not the requested entry's.

    The engine reports `source` as "hub"/"local"/"package"/"adapter" (or a path naming the file): either must match.
    """
    entry, expected = registry.get(requested_id), pane_source(registry, requested_id)
    problems = []
    if stats.model_id != requested_id:
        problems.append(f"model id {stats.model_id!r}")
    kind = entry.source.kind
    if stats.source != kind and PurePosixPath(expected.source_file).name not in (stats.source or ""):
        problems.append(f"source {stats.source!r}")
    if expected.sha256 and stats.sha256 != expected.sha256:
        problems.append(f"sha256 {stats.sha256!r}")
    if stats.base_model != expected.base_model:
        problems.append(f"base {stats.base_model!r}")
    if problems:
        raise ProvenanceError(
            f"The answer for {requested_id} came from another model, so it was not shown. Try again.",
            f"provenance mismatch for {requested_id} ({kind} {expected.source_file}): got {', '.join(problems)}",
        )


def validate_prompt(prompt: str | None, max_chars: int) -> str:
    """The stripped prompt, or InvalidInput saying why it is refused."""
    text = (prompt or "").strip()
    if not text:
        raise InvalidInput("Type a prompt first: an empty prompt cannot be compared.")
    if len(text) > max_chars:
        raise InvalidInput(f"The prompt is {len(text)} characters; the limit here is {max_chars}. Shorten it.")
    return text


def validate_system_prompt(system_prompt: str | None, max_chars: int) -> str:
    """The system prompt (may be empty), or InvalidInput when it is too long."""
    text = system_prompt or ""
    if not isinstance(text, str):
        raise InvalidInput("The system prompt must be text.")
    if len(text) > max_chars:
        raise InvalidInput(f"The system prompt is {len(text)} characters; the limit here is {max_chars}. Shorten it.")
    return text


def with_fixed_seed(settings: GenerationSettings, rng: random.Random) -> GenerationSettings:
    """Settings both sides share: an empty seed is replaced by one drawn now."""
    return settings if settings.seed is not None else settings.merged(seed=rng.randrange(2**31))


@dataclass(frozen=True)
class PairHistory:
    """Each pane's own conversation (user/assistant turns; two for the arena's pair, up to four side by side) and
    the engine conversation id they share as a prefix."""

    conversation_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    turns: tuple[Turns, ...] = ((), ())

    @classmethod
    def of(cls, panes: int) -> "PairHistory":
        """A fresh history for `panes` panes."""
        return cls(turns=((),) * panes)

    def pane_id(self, pane: int) -> str:
        """The engine conversation id of one pane."""
        return f"{self.conversation_id}-{PANE_LETTERS[pane].lower()}"

    def messages(self, side: int, system_prompt: str, prompt: str) -> list[dict]:
        system = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
        return [*system, *self.turns[side], {"role": "user", "content": prompt}]

    def extended(self, prompt: str, answers: tuple[str, ...]) -> "PairHistory":
        user = {"role": "user", "content": prompt}
        turns = tuple((*t, user, {"role": "assistant", "content": a}) for t, a in zip(self.turns, answers))
        return replace(self, turns=turns)


@dataclass(frozen=True)
class PairUpdate:
    """Progress of a pair run; the last one has `active=None` and the extended history."""

    answers: tuple[str, str]
    stats: tuple[GenerationStats | None, GenerationStats | None]
    active: int | None
    """Side generating now (0 = A, 1 = B), None when both are done."""
    history: PairHistory
    notices: tuple[str, ...] = ()


def run_pair(
    engine: Engine,
    model_ids: tuple[str, str],
    history: PairHistory,
    prompt: str,
    system_prompt: str,
    settings: GenerationSettings,
    cancel: threading.Event | None = None,
) -> Iterator[PairUpdate]:
    """Stream `prompt` through model A, then model B; settings must already carry the shared seed.

    Setting `cancel` stops the side that is generating and skips the other.
    """
    answers, stats, notices = ["", ""], [None, None], []
    for side, model_id in enumerate(model_ids):
        request = ChatRequest(model_id=model_id, messages=history.messages(side, system_prompt, prompt),
                              settings=settings, conversation_id=history.pane_id(side))
        engine.prepare(model_id, cancel=cancel)  # load first, so TTFT measures generation, not loading
        for event in engine.stream(request, cancel):
            if event.kind == "token":
                answers[side] += event.text
            elif event.kind == "notice":
                notices.append(f"{'AB'[side]}: {event.text}")
            elif event.kind == "done":
                check_provenance(engine.registry, model_id, event.stats)
                stats[side] = event.stats
            yield PairUpdate(tuple(answers), tuple(stats), side, history, tuple(notices))
        if cancel is not None and cancel.is_set():
            break  # stopped: B does not start; the partial turn is kept
    done = tuple(answers)
    yield PairUpdate(done, tuple(stats), None, history.extended(prompt, done), tuple(notices))


def panes_from_link(query: dict[str, str], known: Sequence[str],
                    default: Sequence[str]) -> tuple[list[str], str | None]:
    """(model ids, notice): the panes a link asks for, `?models=a,b,c` or the older `?a=&b=`.

    The same id may appear twice (its panes share the model's slots). An unknown id, or fewer than two ids, gives
    the default pair; more than `MAX_PANES` ids keeps the first ones. A notice never repeats the link's text: a
    crafted link must not put its words into the page.
    """
    if "models" in query:
        wanted = [m.strip() for m in (query.get("models") or "").split(",") if m.strip()]
    else:
        wanted = [query.get("a") or "", query.get("b") or ""]
    if any(w and w not in known for w in wanted):
        return list(default), "The link names a model this server does not have; showing the default pair."
    if "models" not in query:
        a, b = wanted
        if not a:
            a = default[0] if default[0] != b else default[1]
        return [a, b or (default[1] if default[1] != a else default[0])], None
    if len(wanted) < MIN_PANES:
        return list(default), f"A compare link names {MIN_PANES} to {MAX_PANES} models; showing the default pair."
    if len(wanted) > MAX_PANES:
        return wanted[:MAX_PANES], (f"A compare link names at most {MAX_PANES} models; "
                                    f"showing the first {MAX_PANES} of {len(wanted)}.")
    return wanted, None


@dataclass(frozen=True)
class PanesUpdate:
    """Progress of a side-by-side run; the last one has no pane running and the extended history."""

    answers: tuple[str, ...]
    stats: tuple[GenerationStats | None, ...]
    running: tuple[bool, ...]
    peak_rss_mb: tuple[float | None, ...]
    """The process's peak resident memory while each pane ran (sampled at every event): shared, not the pane's."""
    history: PairHistory
    notices: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        return not any(self.running)


def run_panes(
    engine: Engine,
    model_ids: Sequence[str],
    history: PairHistory,
    prompt: str,
    system_prompt: str,
    settings: GenerationSettings,
    cancel: threading.Event | None = None,
) -> Iterator[PanesUpdate]:
    """Stream `prompt` through every pane's model at once; settings must already carry the shared seed.

    Each pane is its own request from its own thread, so the engine's scheduler batches them. Setting `cancel`
    stops every pane; a failed pane (or a provenance mismatch) stops the others and raises.
    """
    if len(history.turns) != len(model_ids):
        raise ValueError(f"history has {len(history.turns)} panes, the run {len(model_ids)}")
    for model_id in dict.fromkeys(model_ids):
        engine.prepare(model_id, cancel=cancel)  # load first, so TTFT measures generation, not loading
    n, events, halt = len(model_ids), queue.Queue(), Cancel(cancel)
    answers, stats, running, notices = [""] * n, [None] * n, [True] * n, []
    peaks: list[float | None] = [process_rss_mib()] * n
    for pane, model_id in enumerate(model_ids):
        request = ChatRequest(model_id=model_id, messages=history.messages(pane, system_prompt, prompt),
                              settings=settings, conversation_id=history.pane_id(pane))
        threading.Thread(target=_pane_events, args=(engine, request, halt, pane, events), daemon=True,
                         name=f"compare-{PANE_LETTERS[pane]}").start()
    try:
        while any(running):
            try:
                pane, event = events.get(timeout=0.1)
            except queue.Empty:
                pane, event = None, None
            rss = process_rss_mib()
            peaks = [max(p, rss) if on and p is not None and rss is not None else p for p, on in zip(peaks, running)]
            if isinstance(event, BaseException):
                raise event
            if event is None:
                continue
            if event.kind == "token":
                answers[pane] += event.text
            elif event.kind == "notice":
                notices.append(f"{PANE_LETTERS[pane]}: {event.text}")
            elif event.kind == "done":
                check_provenance(engine.registry, model_ids[pane], event.stats)
                stats[pane], running[pane] = event.stats, False
            yield PanesUpdate(tuple(answers), tuple(stats), tuple(running), tuple(peaks), history, tuple(notices))
    finally:
        halt.set()  # no-op once all are done; stops the rest after an error or when the consumer gave up
    done = tuple(answers)
    yield PanesUpdate(done, tuple(stats), tuple(running), tuple(peaks), history.extended(prompt, done),
                      tuple(notices))


def _pane_events(engine: Engine, request: ChatRequest, halt: Cancel, pane: int, events: queue.Queue) -> None:
    """One pane's engine stream into the shared queue as (pane, event); an error is handed over as the event."""
    try:
        for event in engine.stream(request, halt):
            events.put((pane, event))
    except BaseException as err:  # re-raised by run_panes, on the consumer's side
        events.put((pane, err))


def format_stats(source: PaneSource, stats: GenerationStats | None, peak_rss_mb: float | None = None) -> str:
    """One Markdown line per pane: real id, file, revision/sha, and the timings (and process RSS) once known."""
    sha = (stats.sha256 if stats and stats.sha256 else source.sha256) or ""
    revision = (stats.revision if stats and stats.revision else source.revision) or "local file"
    over = f" over `{source.base_model}`" if source.base_model else ""
    head = f"`{source.model_id}` · {source.source_file}{over} · {revision}" + (f" · sha256 {sha[:12]}" if sha else "")
    if stats is None:
        return head
    return (f"{head}  \nTTFT {stats.ttft_s:.2f} s · {stats.tokens_per_s:.1f} tokens/s · "
            f"{stats.n_tokens} tokens · finish: {stats.finish_reason}"
            + (f" · process peak RSS while this pane ran {peak_rss_mb:.0f} MiB" if peak_rss_mb is not None else ""))
