"""Answers for evaluation from exactly the path the app serves: `serving.engine.Engine`.

The GGUFs to compare become entries of a throw-away registry (local sources), and each question
is a `ChatRequest` through `Engine.complete`: the same chat-template rendering, special-token
handling, stop rules and leak guard as a visitor's message. (llama-cpp-python's
`create_chat_completion`, used before, rendered `<|begin_of_text|>` and added a second BOS.)
The serving layer is Gradio-free, so training may use it; the app never imports this module.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from serving.config import ServingSettings
from serving.context.layer import ContextLayer
from serving.engine import ChatRequest, Engine
from serving.generation import GenerationSettings
from serving.progress import ProgressBar
from serving.registry import QUANT_TYPES, parse_registry


def eval_engine(ggufs: dict[str, str], n_ctx: int, folder: Path, context: ContextLayer | None = None) -> Engine:
    """An Engine serving each `label: path` GGUF as model id `label`, with the app's settings (and `context`: the
    app's context layer, which writes a persona request's system turn as it does for a visitor)."""
    models = [{"id": label, "display_name": label, "kind": "base", "context_length": n_ctx,
               "quant": next((q for q in QUANT_TYPES if q in Path(path).name.upper()), "Q4_K_M"),
               "source": {"local": {"path": str(Path(path).resolve())}}} for label, path in ggufs.items()]
    registry = parse_registry({"hub_owner": "iris-eval", "models": models}, folder / "eval-registry.yaml")
    return Engine(registry, ServingSettings.from_env(), context=context)


def greedy(max_new_tokens: int) -> GenerationSettings:
    """Deterministic decoding for comparisons (the app's default repeat penalty)."""
    return GenerationSettings(temperature=0.0, max_new_tokens=max_new_tokens, seed=0)


def answer_all(engine: Engine, model_id: str, conversations: list[list[dict]], max_new_tokens: int,
               response_format: dict | None = None, personas: list[str | None] | None = None) -> list[dict[str, Any]]:
    """Greedy answers of `model_id` to each conversation (ending with a user message), with timings; with
    `personas`, each conversation is that persona's (the engine writes its system turn) and the answer lists the
    `sources` (passage and order refs) its context held."""
    answers = []
    for i, messages in enumerate(ProgressBar(conversations, desc=f"answering with {model_id}", leave=False)):
        started = time.perf_counter()
        text, stats = engine.complete(ChatRequest(model_id, messages, greedy(max_new_tokens),
                                                  response_format=response_format,
                                                  persona_id=personas[i] if personas else None))
        answers.append({"text": text, "tokens": stats.n_tokens, "finish": stats.finish_reason,
                        "seconds": round(time.perf_counter() - started, 3), "sources": [s.ref for s in stats.sources],
                        "unbacked": list(stats.check.unbacked) if stats.check else [], "drafts": stats.drafts})
    return answers

