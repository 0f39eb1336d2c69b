"""Fine-tunes as LoRA adapters over one loaded base, on the real SmolLM2-135M and the real llama.cpp (nothing mocked).

A random r=4 LoRA on all seven projections of SmolLM2 (`random_lora` of the exporter's tests) is exported with
`training.export.adapter`, registered as `source.adapter` over an F32 GGUF of SmolLM2, and served by the engine; the
reference is the same LoRA merged by peft into an F32 GGUF. Answers are compared as token streams (equal, or parting
only where the model's two likeliest tokens are all but tied: tests/greedy.py), never read for words; nothing is
timed.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from serving.backends.batched import Finished
from serving.backends.llamacpp import LlamaCppLoader
from serving.config import ServingSettings
from serving.engine import ChatRequest, Engine
from serving.errors import ModelUnavailable
from serving.files import sha256_of
from serving.generation import GenerationSettings
from serving.registry import Registry, parse_registry
from tests.greedy import same_or_near_tie
from tests.test_export_adapter import random_lora
from training.export.adapter import LoraPair, export_adapter, read_lora_pairs, write_adapter_gguf
from training.export.convert import GeneralInfo, convert_to_gguf, read_llama_spec

pytestmark = pytest.mark.slow

CTX = 1024
GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=24, repeat_penalty=1.0)
QUESTIONS = ["Where is my order? It has not moved for three days.", "How do I return a broken kettle?",
             "Write one sentence about the sea.", "What is 12 times 7?"]
RECIPE = {"base_checkpoint": "smollm2-hf", "method": "lora", "lora": {"r": 4},
          "datasets": [{"format": "chat_jsonl", "path": "data/support/train.jsonl"}]}


def _merged_gguf(base_hf: Path, adapter: Path, out: Path) -> Path:
    """The adapter merged into the base by peft (`training merge`'s own loader), as an F32 GGUF."""
    from transformers import AutoTokenizer

    from training.stages.merge import load_with_adapter

    merged = load_with_adapter(str(base_hf), adapter, "float32").merge_and_unload()
    merged.save_pretrained(out / "merged-hf")
    AutoTokenizer.from_pretrained(base_hf).save_pretrained(out / "merged-hf")
    convert_to_gguf(out / "merged-hf", out / "merged-F32.gguf", GeneralInfo(name="smollm2-merged"), "F32")
    return out / "merged-F32.gguf"


def _bad_rank(adapter: Path, base_hf: Path, out: Path) -> Path:
    """The adapter with one lora_a of rank 3 against its lora_b of rank 4 (the exporter refuses that; written here
    with its writer, as a foreign tool might)."""
    pairs = read_lora_pairs(adapter, read_llama_spec(base_hf))
    pairs[0] = LoraPair(pairs[0].name, pairs[0].a[:3], pairs[0].b)
    write_adapter_gguf(pairs, 8.0, out, GeneralInfo(name="bad-rank"), "F32")
    return out


@pytest.fixture(scope="module")
def files(smollm2_hf, demo_paths, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("adapters")
    adapter = random_lora(smollm2_hf, out / "adapter", scale=0.05)
    demo_adapter = random_lora(demo_paths["demo-base"].parent / "demo-base-hf", out / "demo-adapter")
    convert_to_gguf(smollm2_hf, out / "base-F32.gguf", GeneralInfo(name="smollm2-base"), "F32")
    return {"base": out / "base-F32.gguf",
            "lora": Path(export_adapter(adapter, out / "lora.gguf", out_type="F32")["path"]),
            "merged": _merged_gguf(smollm2_hf, adapter, out),
            "demo-lora": Path(export_adapter(demo_adapter, out / "demo-lora.gguf")["path"]),
            "bad-rank": _bad_rank(adapter, smollm2_hf, out / "bad-rank.gguf")}


def _registry(files: dict[str, Path], base: Path | None = None, lora_sha: str | None = None) -> Registry:
    def adapter(model_id: str, name: str, sha: str | None = None) -> dict:
        local = {"path": str(files[name]), **({"sha256": sha} if sha else {})}
        return {"id": model_id, "display_name": model_id, "kind": "fine-tuned", "context_length": CTX,
                "recipe": RECIPE, "source": {"adapter": {"base": "base", "local": local}}}

    models = [{"id": "base", "display_name": "SmolLM2 F32", "kind": "base", "context_length": CTX,
               "source": {"local": {"path": str(base or files["base"])}}},
              adapter("tuned", "lora", lora_sha or sha256_of(files["lora"])),
              {"id": "merged", "display_name": "merged", "kind": "base", "context_length": CTX,
               "source": {"local": {"path": str(files["merged"])}}},
              adapter("demo-lora", "demo-lora"), adapter("bad-rank", "bad-rank")]
    return parse_registry({"hub_owner": "test", "models": models}, files["base"].parent / "model_registry.yaml")


def _engine(registry: Registry, ram_budget_mb: float = 4096) -> Engine:
    return Engine(registry, ServingSettings(ram_budget_mb=ram_budget_mb, slots=4, max_queue=8, n_threads=2))


@pytest.fixture
def engine(files):
    engine = _engine(_registry(files))
    yield engine
    engine.close()


def ask(model_id: str, question: str, conversation_id: str | None = None) -> ChatRequest:
    return ChatRequest(model_id, [{"role": "user", "content": question}], GREEDY, conversation_id)


def loaded(engine: Engine, model_id: str):
    return engine.pool._loaded[model_id].model


def test_the_adapter_over_its_base_answers_as_the_merged_model(engine, files):
    tuned = [engine.complete(ask("tuned", q)) for q in QUESTIONS]
    merged = [engine.complete(ask("merged", q))[0] for q in QUESTIONS]
    base = [engine.complete(ask("base", q))[0] for q in QUESTIONS]
    for question, (answer, _), reference in zip(QUESTIONS, tuned, merged):
        assert same_or_near_tie(loaded(engine, "merged"), ask("merged", question).messages, answer, reference,
                                settings=GREEDY) is None
    assert [a for a, _ in tuned] != base  # the adapter is applied: a refused one would leave the bare base
    stats = tuned[0][1]
    assert stats.model_id == "tuned" and stats.source == str(files["lora"]) and stats.sha256 == sha256_of(files["lora"])


def test_base_and_fine_tune_at_once_answer_as_each_alone_from_one_copy_of_the_weights(engine, files):
    jobs = [(model_id, q) for q in QUESTIONS[:2] for model_id in ("base", "tuned")]
    alone = [engine.complete(ask(model_id, q))[0] for model_id, q in jobs]
    together: list = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def run(i: int) -> None:
        barrier.wait()
        together[i] = engine.complete(ask(*jobs[i], conversation_id=f"together-{i}"))[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for (model_id, question), got, expected in zip(jobs, together, alone):
        problem = same_or_near_tie(loaded(engine, model_id), ask(model_id, question).messages, got, expected,
                                   settings=GREEDY)
        assert problem is None, f"{model_id}: {problem}"
    # one copy of the base: the adapter rides on it and counts only its own file
    assert sorted(engine.pool.loaded_ids()) == ["base", "tuned"]
    assert loaded(engine, "tuned").base is loaded(engine, "base")
    base_bytes = LlamaCppLoader().size(engine.registry.get("base"), files["base"], engine.settings)
    assert engine.pool.used_bytes() == base_bytes + files["lora"].stat().st_size


def test_a_conversation_moved_to_the_adapter_does_not_reuse_the_base_kv(engine):
    _, first = engine.complete(ask("base", QUESTIONS[0], "c"))
    _, moved = engine.complete(ask("tuned", QUESTIONS[0], "c"))
    _, back = engine.complete(ask("base", QUESTIONS[0], "c"))
    assert first.cached_prompt_tokens == 0 and moved.cached_prompt_tokens == 0  # the base's KV is not the adapter's
    assert back.cached_prompt_tokens > 0  # while the base's own stayed for it


def test_closing_an_adapter_ends_its_answers_and_leaves_the_base_serving(engine, files):
    engine.prepare("base")
    base = loaded(engine, "base")
    view = base.adapter(engine.registry.get("tuned"), files["lora"])
    long = GenerationSettings(temperature=0.0, max_new_tokens=400, ignore_eos=True)
    jobs = [view.submit(view.prompt_tokens(ask("tuned", q).messages), 400, long, None, f"v{i}", threading.Event())
            for i, q in enumerate(QUESTIONS * 2)]  # 4 decode, 4 wait for a slot
    view.close()
    ends = [next(e for e in job.results() if isinstance(e, Finished)) for job in jobs]
    assert {end.reason for end in ends} == {"cancelled"} and base.alive
    assert all(base.scheduler.cached_tokens(f"v{i}", view.lora) is None for i in range(len(jobs)))
    assert engine.complete(ask("base", QUESTIONS[0]))[1].finish_reason in ("stop", "length")


def test_unloading_the_base_unloads_its_adapter_first_and_both_load_again(files):
    registry = _registry(files)
    settings = ServingSettings()
    one = LlamaCppLoader().size(registry.get("base"), files["base"], settings) / 2**20
    engine = _engine(registry, ram_budget_mb=one * 1.5)  # the base and its adapter fit; the merged model besides not
    try:
        before = engine.complete(ask("tuned", QUESTIONS[1]))[0]
        adapter = loaded(engine, "tuned")
        engine.complete(ask("merged", QUESTIONS[1]))
        assert engine.pool.loaded_ids() == ["merged"] and not adapter.alive and not adapter.base.alive
        again = engine.complete(ask("tuned", QUESTIONS[1]))[0]
        assert same_or_near_tie(loaded(engine, "tuned"), ask("tuned", QUESTIONS[1]).messages, again, before,
                                settings=GREEDY) is None
        assert sorted(engine.pool.loaded_ids()) == ["base", "tuned"]
    finally:
        engine.close()
    assert engine.pool.loaded_ids() == []


@pytest.mark.parametrize(("model_id", "reason"), [
    ("demo-lora", "demo-lora is not available: its LoRA adapter does not fit SmolLM2 F32."),  # another model's
    ("bad-rank", "bad-rank is not available: its LoRA adapter does not fit SmolLM2 F32."),    # lora_a r3, lora_b r4
])
def test_an_adapter_llama_cpp_refuses_is_an_error_not_the_bare_base(engine, model_id, reason):
    with pytest.raises(ModelUnavailable) as err:
        engine.complete(ask(model_id, QUESTIONS[0]))
    assert err.value.user_message == reason
    assert "llama.cpp refused the LoRA adapter" in str(err.value)
    assert model_id not in engine.pool.loaded_ids()
    assert engine.complete(ask("base", QUESTIONS[0]))[1].finish_reason in ("stop", "length")  # the base is unharmed


def test_a_wrong_sha256_or_a_missing_base_is_refused_with_the_reason(files, tmp_path):
    engine = _engine(_registry(files, lora_sha="0" * 64))
    try:
        with pytest.raises(ModelUnavailable, match=r"sha256 mismatch .*lora\.gguf") as err:
            engine.complete(ask("tuned", QUESTIONS[0]))
        assert err.value.user_message.startswith("tuned is not available: its file failed the integrity check "
                                                 "(sha256 mismatch).")
        assert "tuned" not in engine.pool.loaded_ids()
    finally:
        engine.close()
    engine = _engine(_registry(files, base=tmp_path / "gone.gguf"))
    try:
        status = engine.status("tuned")
        assert not status.available and status.reason.startswith("its base model SmolLM2 F32 is not available")
        with pytest.raises(ModelUnavailable, match="file not found"):
            engine.complete(ask("tuned", QUESTIONS[0]))
    finally:
        engine.close()
