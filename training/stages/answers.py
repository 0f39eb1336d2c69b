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
from serving.engine import ChatRequest, Engine
from serving.generation import GenerationSettings
from serving.progress import ProgressBar
from serving.registry import QUANT_TYPES, parse_registry


def eval_engine(ggufs: dict[str, str], n_ctx: int, folder: Path) -> Engine:
    """An Engine serving each `label: path` GGUF as model id `label`, with the app's settings."""
    models = [{"id": label, "display_name": label, "kind": "base", "context_length": n_ctx,
               "quant": next((q for q in QUANT_TYPES if q in Path(path).name.upper()), "Q4_K_M"),
               "source": {"local": {"path": str(Path(path).resolve())}}} for label, path in ggufs.items()]
    registry = parse_registry({"hub_owner": "iris-eval", "models": models}, folder / "eval-registry.yaml")
    return Engine(registry, ServingSettings.from_env())


def greedy(max_new_tokens: int) -> GenerationSettings:
    """Deterministic decoding for comparisons (the app's default repeat penalty)."""
    return GenerationSettings(temperature=0.0, max_new_tokens=max_new_tokens, seed=0)


def answer_all(engine: Engine, model_id: str, conversations: list[list[dict]], max_new_tokens: int,
               response_format: dict | None = None) -> list[dict[str, Any]]:
    """Greedy answers of `model_id` to each conversation (ending with a user message), with timings."""
    answers = []
    for messages in ProgressBar(conversations, desc=f"answering with {model_id}", leave=False):
        started = time.perf_counter()
        text, stats = engine.complete(ChatRequest(model_id, messages, greedy(max_new_tokens),
                                                  response_format=response_format))
        answers.append({"text": text, "tokens": stats.n_tokens, "finish": stats.finish_reason,
                        "seconds": round(time.perf_counter() - started, 3)})
    return answers

