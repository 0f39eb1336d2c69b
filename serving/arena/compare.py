"""One prompt through two models, for the side-by-side and blind-arena views.

Fairness: both sides get the same messages (so the same chat-template rendering), the same
settings and the same seed (drawn once when the visitor leaves it empty). On a 2-core box
the two answers run **sequentially**, A then B, so each model has the CPU to itself and the
timings compare; each model is loaded before its run, so time to first token excludes
loading. Provenance: when a side finishes, the model id, source and sha256 the engine
reports are checked against the registry entry shown in that pane; a mismatch (a "base"
pane silently answered by the fine-tune) raises `ProvenanceError` and the answer is
dropped. Each side keeps its own history. Knows nothing of Gradio.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from serving.engine import ChatRequest, Engine, GenerationStats
from serving.errors import InvalidInput, ServingError
from serving.generation import GenerationSettings
from serving.registry import HubSource, Registry

RUN_ORDER_NOTE = ("Answers run one after the other (A, then B) so each model has the CPU to itself: "
                  "same prompt, settings and seed for both.")
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
    """Each side's own conversation (user/assistant turns) and engine conversation id."""

    conversation_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    turns: tuple[Turns, Turns] = ((), ())

    def messages(self, side: int, system_prompt: str, prompt: str) -> list[dict]:
        system = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
        return [*system, *self.turns[side], {"role": "user", "content": prompt}]

    def extended(self, prompt: str, answers: tuple[str, str]) -> "PairHistory":
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
                              settings=settings, conversation_id=f"{history.conversation_id}-{'ab'[side]}")
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


def format_stats(source: PaneSource, stats: GenerationStats | None) -> str:
    """One Markdown line per pane: real id, file, revision/sha, and the timings once known."""
    sha = (stats.sha256 if stats and stats.sha256 else source.sha256) or ""
    revision = (stats.revision if stats and stats.revision else source.revision) or "local file"
    over = f" over `{source.base_model}`" if source.base_model else ""
    head = f"`{source.model_id}` · {source.source_file}{over} · {revision}" + (f" · sha256 {sha[:12]}" if sha else "")
    if stats is None:
        return head
    return (f"{head}  \nTTFT {stats.ttft_s:.2f} s · {stats.tokens_per_s:.1f} tokens/s · "
            f"{stats.n_tokens} tokens · finish: {stats.finish_reason}")
