"""`python -m training import-gguf` on the real SmolLM2-135M-Instruct Q4_1 GGUF (pre-tokenizer `smollm`) and on a
tiny Llama 3-style model exported by our own exporter (`llama-bpe`): tokenization parity with llama.cpp on the
source file over a hard corpus, the chat template carried over byte for byte, and the imported model's logits
against llama.cpp's on the source file. Nothing here mocks llama.cpp or the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.export.gguf_import import GGUFImportError, import_gguf, read_fields, tokenizer_from_gguf
from training.export.verify import HARD_CORPUS, LOGITS_PROMPTS, check_chat_template, check_tokenization


@pytest.fixture(scope="module")
def smollm2_fields(smollm2_gguf) -> dict:
    return read_fields(smollm2_gguf)


# ---------------------------------------------------------------- refusals


def test_unknown_pre_tokenizer_and_vocab_types_are_refused_by_name(smollm2_fields):
    with pytest.raises(GGUFImportError, match=r"GGUF pre-tokenizer 'qwen2' is not supported: .*\(llama-bpe\).*\(smollm\)"):
        tokenizer_from_gguf({**smollm2_fields, "tokenizer.ggml.pre": "qwen2"})
    with pytest.raises(GGUFImportError, match="tokenizer model 'llama' is not supported: .*byte-level BPE"):
        tokenizer_from_gguf({**smollm2_fields, "tokenizer.ggml.model": "llama"})


def test_refuses_non_empty_destination_and_other_files(smollm2_gguf, tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(GGUFImportError, match="exists and is not empty"):
        import_gguf(smollm2_gguf, tmp_path)
    (tmp_path / "bad.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(GGUFImportError, match="bad.gguf is not a readable GGUF file"):
        import_gguf(tmp_path / "bad.gguf", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.gguf", "keep.txt"]


def test_cli_refuses_with_a_one_line_message(tmp_path, capsys):
    from training.cli import main

    (tmp_path / "bad.gguf").write_bytes(b"GGUF")
    assert main(["import-gguf", str(tmp_path / "bad.gguf"), str(tmp_path / "out")]) == 2
    assert "error: " in capsys.readouterr().out and not (tmp_path / "out").exists()


# ---------------------------------------------------------------- SmolLM2 (smollm)


def test_folder_is_a_plain_float32_llama(smollm2_hf, smollm2_gguf):
    config = json.loads((smollm2_hf / "config.json").read_text(encoding="utf-8"))
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
            config["num_key_value_heads"], config["vocab_size"]) == (576, 30, 9, 3, 49152)
    assert config["tie_word_embeddings"] and config["dtype"] == "float32"
    record = json.loads((smollm2_hf / "import.json").read_text(encoding="utf-8"))
    assert record["tokenizer_pre"] == "smollm" and record["source"] == str(smollm2_gguf.resolve())


def test_tokenization_matches_llama_cpp_on_the_source_gguf(smollm2_hf, smollm2_gguf):
    report = check_tokenization(smollm2_hf, smollm2_gguf)
    print(f"\nimported tokenizer vs llama.cpp: {len(report['mismatches'])} mismatches in {report['texts']} texts x 2")
    assert report["passed"] and report["texts"] >= len(HARD_CORPUS) + 5, report["mismatches"][:3]


def test_transformers_own_gguf_tokenizer_differs_on_digits(smollm2_gguf):
    """Why the importer rebuilds the tokenizer: transformers' GGUF converter uses GPT-2's pre-tokenizer."""
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    stock = AutoTokenizer.from_pretrained(smollm2_gguf.parent, gguf_file=smollm2_gguf.name)
    vocab = Llama(model_path=str(smollm2_gguf), vocab_only=True, verbose=False)
    differ = [t for t in HARD_CORPUS
              if stock(t, add_special_tokens=False)["input_ids"] != vocab.tokenize(t.encode(), add_bos=False, special=True)]
    print(f"\ntransformers' GGUF tokenizer vs llama.cpp: {len(differ)} of {len(HARD_CORPUS)} texts differ")
    assert "\n\n3.14 and\n\n42\n\n1." in differ and len(differ) > 30


def test_chat_template_is_carried_over_byte_for_byte(smollm2_hf, smollm2_gguf, smollm2_fields):
    assert (smollm2_hf / "chat_template.jinja").read_text(encoding="utf-8") == smollm2_fields["tokenizer.chat_template"]
    report = check_chat_template(smollm2_hf, smollm2_gguf)
    assert report["passed"], report["mismatches"]


def _agreement(want: list[np.ndarray], got: list[np.ndarray]) -> tuple[float, float]:
    same = sum(int((w.argmax(-1) == g.argmax(-1)).sum()) for w, g in zip(want, got))
    return same / sum(len(w) for w in want), max(float(np.abs(w - g).max()) for w, g in zip(want, got))


def test_imported_logits_match_llama_cpp_on_the_source_file(smollm2_hf, smollm2_gguf, tmp_path):
    """The imported float32 model vs llama.cpp on the Q4_1 source: llama.cpp's Q4_1 kernels also round the
    activations to 8 bits (Q8_1), so a few near-tie argmaxes flip. The control, our F32 export of the imported
    weights run by the same llama.cpp, shows the weights themselves carry over exactly."""
    from training.export.convert import GeneralInfo, convert_to_gguf
    from training.export.verify import _prompt_ids, gguf_logits, hf_logits

    batch = _prompt_ids(smollm2_hf, LOGITS_PROMPTS)
    want = hf_logits(smollm2_hf, batch)
    q4_agreement, q4_diff = _agreement(want, gguf_logits(smollm2_gguf, batch))
    convert_to_gguf(smollm2_hf, tmp_path / "f32.gguf", GeneralInfo(name="smollm2-f32"), "F32")
    f32_agreement, f32_diff = _agreement(want, gguf_logits(tmp_path / "f32.gguf", batch))
    print(f"\nimported vs llama.cpp on {sum(map(len, batch))} positions: Q4_1 source argmax agreement "
          f"{q4_agreement:.4f} (max|diff| {q4_diff:.3f}); F32 re-export {f32_agreement:.4f} (max|diff| {f32_diff:.4f})")
    assert q4_agreement >= 0.9 and f32_agreement >= 0.995 and f32_diff < 0.05 and f32_diff < q4_diff / 5


# ---------------------------------------------------------------- Llama 3-style (llama-bpe)


def test_llama_bpe_round_trip_export_then_import(tmp_path):
    """A tiny Llama 3.2-shaped model -> our F16 GGUF -> import-gguf: same weights, same tokenizer as llama.cpp."""
    from safetensors.torch import load_file

    from tests.test_export import CORPUS, TINY
    from training.export import export_gguf
    from training.random_model import ModelShape, llama_config, save_random_llama
    from training.tokenizer import build_llama3_tokenizer

    tok = build_llama3_tokenizer(CORPUS * 20, vocab_size=800, model_max_length=4096)
    original = save_random_llama(llama_config(ModelShape(**TINY), vocab_size=len(tok)), tok, tmp_path / "hf", seed=3)
    gguf_path = export_gguf(original, tmp_path / "tiny-F16.gguf", quant="F16").path
    imported = import_gguf(gguf_path, tmp_path / "imported")
    assert json.loads((imported / "import.json").read_text(encoding="utf-8"))["tokenizer_pre"] == "llama-bpe"
    report = check_tokenization(imported, gguf_path)
    assert report["passed"], report["mismatches"][:3]
    assert check_chat_template(imported, gguf_path)["passed"]
    before, after = load_file(original / "model.safetensors"), load_file(imported / "model.safetensors")
    assert set(after) == set(before)  # q/k un-permuted back to HF's layout; bf16 -> f16 exact but for f16 subnormals
    assert all(np.allclose(before[name].float().numpy(), after[name].numpy(), rtol=0, atol=3e-8) for name in before)
    config = json.loads((imported / "config.json").read_text(encoding="utf-8"))
    assert config["rope_parameters"] == json.loads((original / "config.json").read_text())["rope_parameters"]
    half = load_file(import_gguf(gguf_path, tmp_path / "bf16", dtype="bfloat16") / "model.safetensors")
    assert {t.dtype for t in half.values()} == {before["model.norm.weight"].dtype}  # bf16, like the originals
    assert all(np.allclose(before[name].float().numpy(), half[name].float().numpy(), rtol=0, atol=3e-8) for name in before)


def _real_llama3_tokenizer():
    """Meta's Llama 3 BPE (quicktok's copy of the 128,000 ranks) as a Hugging Face tokenizer with the 256 specials:
    merges recovered from the ranks the way transformers' TikTokenConverter does."""
    import quicktok
    from tokenizers import Tokenizer, decoders, models
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    from training.families import FAMILIES
    from training.tokenizer import add_llama3_specials, to_hf

    enc = quicktok.get_encoding("llama3")
    ranks = {enc.decode_single_token_bytes(i): i for i in range(128000)}
    to_text = bytes_to_unicode()  # byte value -> the printable character GPT-2 byte-level BPE uses

    def text(piece: bytes) -> str:
        return "".join(to_text[b] for b in piece)

    merges = []
    for token, rank in ranks.items():
        pairs = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in ranks and token[i:] in ranks]
        merges += [(rank, ranks[a], ranks[b], text(a), text(b)) for a, b in pairs]
    merges.sort()
    family = FAMILIES["llama3-bpe"]
    tok = Tokenizer(models.BPE(vocab={text(t): r for t, r in ranks.items()}, merges=[m[3:] for m in merges],
                               ignore_merges=family.ignore_merges))
    tok.pre_tokenizer, tok.decoder = family.pre_tokenizer(), decoders.ByteLevel()
    return enc, to_hf(add_llama3_specials(tok), model_max_length=131072)


def test_real_llama3_vocabulary_export_and_import_match_llama_cpp(tmp_path):
    """At the real 128,256-id size: our exporter's GGUF and the importer's rebuilt tokenizer both tokenize the hard
    corpus exactly like llama.cpp, and like Meta's tiktoken ranks (quicktok) on ordinary text."""
    from training.export import export_gguf
    from training.random_model import ModelShape, llama_config, save_random_llama

    enc, tok = _real_llama3_tokenizer()
    plain = [t for t in HARD_CORPUS if "<|" not in t]  # quicktok names the specials as Llama 3.0 did
    assert [tok(t, add_special_tokens=False)["input_ids"] for t in plain] == [enc.encode_ordinary(t) for t in plain]
    shape = ModelShape(n_layer=1, hidden=64, n_head=2, n_head_kv=1, ffn=128)
    original = save_random_llama(llama_config(shape, vocab_size=len(tok)), tok, tmp_path / "hf", seed=0)
    gguf_path = export_gguf(original, tmp_path / "llama3-vocab-F16.gguf", quant="F16").path
    assert check_tokenization(original, gguf_path)["passed"]
    rebuilt = tokenizer_from_gguf(read_fields(gguf_path))
    rebuilt.save_pretrained(tmp_path / "imported")
    report = check_tokenization(tmp_path / "imported", gguf_path)
    assert report["passed"] and report["texts"] > 250, report["mismatches"][:3]


def test_imported_smollm2_is_a_training_base(smollm2_hf, tmp_path):
    """TRL on the imported folder: the ChatML training template is picked from the tokenizer's family, batches carry
    labels exactly on the assistant spans and their <|im_end|>, and LoRA steps run with a finite loss."""
    import math

    from tests.test_families import chatml_assistant_positions
    from tests.test_training_template import CONVERSATIONS
    from training.sft.template import render
    from training.sft.trainer import TrainPlan, build_trainer, load_tokenizer

    rows = [{"messages": conv} for conv in CONVERSATIONS[:3]]
    plan = TrainPlan(base_checkpoint=str(smollm2_hf), method="lora", lora={"r": 4},
                     sft={"max_length": 128, "assistant_only_loss": True, "bf16": False, "per_device_train_batch_size": 1,
                          "report_to": "none", "logging_steps": 1},
                     seed=0, output_dir=tmp_path / "run", overrides={"max_steps": 2})
    trainer = build_trainer(plan, rows)
    tokenizer = load_tokenizer(str(smollm2_hf))
    for example, row in zip(trainer.train_dataset, rows):
        labelled = {i for i, label in enumerate(example["labels"]) if label != -100}
        assert labelled == chatml_assistant_positions(tokenizer, render(tokenizer, row["messages"]))
    assert math.isfinite(trainer.train().training_loss)
