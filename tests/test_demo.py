"""Offline demo models: bundled data generator, tokenization/packing, the build's report and the real GGUFs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

# Spinning OpenMP threads crawl on a shared 2-core box; only effective if torch is not loaded yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

from training.demo import data, datagen
from training.demo.loop import TrainSettings

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "demo"
INTENTS = {"order_status", "shipping", "refund_return", "payment", "billing_pricing", "account_login",
           "technical", "cancellation", "product_question"}
SMALL = datagen.DataSizes(support=300, support_test=30, general=100, study=100, corpus=50)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("demo-data")  # the support set too: never the repo's data/support
    return datagen.generate(out, seed=7, sizes=SMALL, support_dir=out / "support")


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------- data generator


def test_generator_is_deterministic(generated, tmp_path):
    again = datagen.generate(tmp_path / "a", seed=7, sizes=SMALL, support_dir=tmp_path / "a" / "support")
    other = datagen.generate(tmp_path / "b", seed=8, sizes=SMALL, support_dir=tmp_path / "b" / "support")
    for name, path in generated.items():
        assert path.read_bytes() == again[name].read_bytes(), name
    assert generated["support"].read_bytes() != other["support"].read_bytes()


def test_committed_data_matches_the_generator(tmp_path):
    fresh = datagen.generate(tmp_path, seed=0, support_dir=tmp_path / "support")
    for name, path in fresh.items():
        committed = (DATA if path.parent == tmp_path else REPO / "data" / "support") / path.name
        assert committed.read_bytes() == path.read_bytes(), (
            f"{committed} differs from the generator: run `python -m training.demo.datagen` and commit data/demo")


@pytest.mark.parametrize("name", ["support", "support_test", "general", "study"])
def test_chat_records_are_valid(generated, name):
    for record in _records(generated[name]):
        messages = record["messages"]
        roles = [m["role"] for m in messages if m["role"] != "system"]
        assert all(m["role"] != "system" for m in messages[1:]), "system prompt only first"
        assert roles == ["user", "assistant"] * (len(roles) // 2) and roles, record
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in messages), record
        assert "<|" not in json.dumps(messages), "no template tokens inside the data"


def test_support_covers_every_intent_with_system_prompts_and_multi_turn():
    records = _records(DATA / "support.jsonl")
    assert {r["intent"] for r in records} == INTENTS
    assert any(r["messages"][0]["role"] == "system" for r in records)
    assert any(r["messages"][0]["role"] != "system" for r in records)
    assert sum(len(r["messages"]) >= 4 for r in records) > len(records) // 5, "some dialogues are multi-turn"
    user_texts = [m["content"] for r in records for m in r["messages"] if m["role"] == "user"]
    assert any(re.search(r"(bl\d{5}|#\d{5})", text) for text in user_texts), "order ids typed loosely"
    assert sum(text == text.lower() for text in user_texts) > len(user_texts) // 10, "casual lower-case typing"


def test_held_out_dialogues_are_not_in_training():
    train = {json.dumps(r["messages"]) for r in _records(DATA / "support.jsonl")}
    test = [json.dumps(r["messages"]) for r in _records(DATA / "support_test.jsonl")]
    assert test and not train.intersection(test)
    assert {r["intent"] for r in _records(DATA / "support_test.jsonl")} == INTENTS


def test_corpus_is_plain_paragraphs(generated):
    paragraphs = data.read_paragraphs(generated["corpus"])
    assert len(paragraphs) == SMALL.corpus
    assert all(p.endswith(".") and "<|" not in p for p in paragraphs)


# ---------------------------------------------------------------- tokenizer, masks, packing


@pytest.fixture(scope="module")
def tokenizer(generated):
    from training.demo.pretrain import build_tokenizer

    chats = [generated[n] for n in ("general", "study")]
    return build_tokenizer(chats, [generated["corpus"]], vocab_size=1024, max_length=256)


def test_tokenizer_training_is_deterministic(generated, tokenizer):
    from training.demo.pretrain import build_tokenizer

    chats = [generated[n] for n in ("general", "study")]
    again = build_tokenizer(chats, [generated["corpus"]], vocab_size=1024, max_length=256)
    assert again.backend_tokenizer.to_str() == tokenizer.backend_tokenizer.to_str()
    assert len(tokenizer) == 1024


def test_assistant_only_labels_cover_exactly_the_replies(tokenizer):
    messages = datagen.chat("where is my order?", "It ships today.", "thanks", "You're welcome!",
                            system="Be brief.")
    example = data.chat_example(tokenizer, messages, assistant_only=True)
    learned = tokenizer.decode([t for t, lab in zip(example.input_ids, example.labels) if lab != data.IGNORE])
    assert learned == "It ships today.<|eot_id|>You're welcome!<|eot_id|>"
    full = data.chat_example(tokenizer, messages, assistant_only=False)
    assert full.labels == full.input_ids
    assert tokenizer.decode(full.input_ids).startswith("<|begin_of_text|><|start_header_id|>system")
    assert "Today Date: 26 Jul 2024" in tokenizer.decode(full.input_ids)


def test_pack_keeps_examples_whole_and_pads():
    examples = [data.Example([i] * n, [i] * n) for i, n in enumerate((5, 3, 4, 2), 1)]
    blocks = data.pack(examples, block=8, pad_id=0)
    assert [b.input_ids for b in blocks] == [[1, 1, 1, 1, 1, 2, 2, 2], [3, 3, 3, 3, 4, 4, 0, 0]]
    assert blocks[1].labels[-2:] == [data.IGNORE, data.IGNORE]
    stream = list(data.concat_blocks(examples, block=4))
    assert [b.input_ids for b in stream] == [[1, 1, 1, 1], [1, 2, 2, 2], [3, 3, 3, 3]]


def test_sft_settings_refuse_unknown_keys():
    assert TrainSettings.from_recipe({"learning_rate": 1e-3}, "x.sft").learning_rate == 1e-3
    with pytest.raises(ValueError, match="packing"):
        TrainSettings.from_recipe({"packing": True}, "demo-base.recipe.sft")


# ---------------------------------------------------------------- the built models (python -m training build-demo)


@pytest.fixture(scope="module")
def build_report(demo_paths) -> dict:
    return json.loads((demo_paths["demo-base"].parent / "build.json").read_text())


def test_support_model_has_lower_held_out_loss(build_report):
    held = build_report["held_out"]
    base, support = held["demo-base"]["assistant_loss"], held["demo-support"]["assistant_loss"]
    assert support < 0.7 * base, (base, support)
    assert held["demo-support"]["first_reply_match"] > held["demo-base"]["first_reply_match"]
    assert held["demo-support"]["sample_answer"].strip()


def test_build_follows_the_registry_recipe(registry, demo_paths, build_report):
    config = json.loads((demo_paths["demo-base"].parent / "demo-base-hf" / "config.json").read_text())
    for key, value in registry.get("demo-base").recipe.architecture.items():
        assert config[key] == value, key
    for model_id, path in demo_paths.items():
        assert build_report["gguf"][model_id]["path"] == path.name
        assert build_report["gguf"][model_id]["size_bytes"] == path.stat().st_size


def _gguf_reply(registry, demo_paths, model_id: str, question: str) -> str:
    from llama_cpp import Llama

    llm = Llama(model_path=str(demo_paths[model_id]), n_ctx=registry.get(model_id).context_length,
                n_threads=2, seed=0, verbose=False)
    return llm.create_chat_completion(messages=[{"role": "user", "content": question}], max_tokens=48,
                                      temperature=0.0)["choices"][0]["message"]["content"]


@pytest.mark.parametrize("model_id", ["demo-base", "demo-support"])
def test_gguf_chats_through_its_template(registry, demo_paths, model_id):
    reply = _gguf_reply(registry, demo_paths, model_id, "Hi, where is my order BL-12345?")
    assert reply.strip(), f"{model_id} produced an empty answer"
    assert "<|" not in reply and "assistant" not in reply[:12], reply


def _reply_nll(registry, demo_paths, model_id: str, dialogues: list[list[dict]]) -> float:
    """Mean negative log-likelihood per token that the GGUF (through llama.cpp) gives each dialogue's first reply."""
    import numpy as np
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    llm = Llama(model_path=str(demo_paths[model_id]), n_ctx=registry.get(model_id).context_length, n_threads=2,
                logits_all=True, verbose=False)
    text = [llm.detokenize([t], special=True).decode() for t in (llm.token_eos(), llm.token_bos())]
    template = Jinja2ChatFormatter(llm.metadata["tokenizer.chat_template"], eos_token=text[0], bos_token=text[1])
    total, count = 0.0, 0
    for messages in dialogues:
        first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
        prompt = llm.tokenize(template(messages=messages[:first]).prompt.encode(), add_bos=False, special=True)
        reply = llm.tokenize(messages[first]["content"].encode(), add_bos=False, special=False)
        llm.reset()
        llm.eval(prompt + reply)
        logits = np.asarray(llm.scores[len(prompt) - 1:len(prompt) + len(reply) - 1], dtype=np.float64)
        logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        total += float((logz - logits[np.arange(len(reply)), reply]).sum())
        count += len(reply)
    return total / count


def test_support_gguf_prefers_held_out_support_replies(registry, demo_paths):
    # A property of the fine-tune that does not depend on the words it happens to sample on this CPU: through
    # llama.cpp, its GGUF finds held-out support replies far more likely than the base's GGUF does.
    dialogues = [r["messages"] for r in _records(DATA / "support_test.jsonl")[:12]]
    base, support = (_reply_nll(registry, demo_paths, m, dialogues) for m in ("demo-base", "demo-support"))
    assert support < 0.7 * base, (base, support)


# ---------------------------------------------------------------- training code on a toy-sized model

TOY_ARCH = {"vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
            "tie_word_embeddings": True,
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 4.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}
TOY_SFT = TrainSettings(max_length=64, learning_rate=3e-3, num_train_epochs=0.1, per_device_train_batch_size=2)


def _toy_pretrain(tokenizer, generated, seed: int):
    from training.demo import loop, pretrain

    blocks = pretrain.pretrain_blocks(tokenizer, [generated["general"]], [generated["corpus"]], TOY_SFT.max_length)
    model = pretrain.new_model(TOY_ARCH, tokenizer, seed)
    losses = loop.train(model, blocks[:24], TOY_SFT, seed)
    return model, losses


def test_training_is_deterministic_for_a_seed(tokenizer, generated):
    import torch

    (first, losses_a), (second, losses_b) = (_toy_pretrain(tokenizer, generated, seed=3) for _ in range(2))
    assert losses_a == losses_b and len(losses_a) == 2
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), name


def test_lora_fine_tune_merges_into_a_plain_llama(tokenizer, generated):
    import torch
    from transformers import LlamaForCausalLM

    from training.demo import finetune

    base, _ = _toy_pretrain(tokenizer, generated, seed=3)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    settings = dataclasses.replace(TOY_SFT, max_length=256, assistant_only_loss=True, num_train_epochs=1.0)
    blocks = finetune.support_blocks(tokenizer, [generated["support"]], settings)[:4]
    lora = {"r": 4, "lora_alpha": 8, "target_modules": "all-linear", "task_type": "CAUSAL_LM"}
    merged, losses = finetune.lora_finetune(base, lora, blocks, settings, seed=3)
    assert type(merged) is LlamaForCausalLM and len(losses) == 2
    assert set(merged.state_dict()) == set(before), "no adapter weights left after merge"
    assert not torch.equal(merged.state_dict()["model.layers.0.self_attn.q_proj.weight"],
                           before["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(merged.state_dict()["model.embed_tokens.weight"], before["model.embed_tokens.weight"])
