"""GGUF exporter: unit tests of the conversion maths and refusals, plus an end-to-end export of a
tiny Llama (GQA, llama3 rope, tied embeddings, Llama-3-style BPE) through llama.cpp with all four
parity checks. Nothing here mocks llama.cpp or the model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest

from serving.registry import QUANT_TYPES
from training.export import ExportError, export_gguf
from training.export.convert import (
    LlamaSpec, RopeSpec, llama3_rope_factors, permute_for_gguf, read_llama_spec, read_tokenizer,
)
from serving.files import sha256_of
from training.export.quantize import ftype_constant, ftype_value

CORPUS = [
    "Where is my order? I paid with a card on Monday and the tracking page still says pending.",
    "To reset your password open Settings, then Account, then Security, and follow the link we email you.",
    "def greet(name):\n    return f'Hello, {name}!'\n\nprint(greet('Iris'))",
    "Refunds take 5 to 10 business days. Order 12345 shipped on 2024-07-26 via express delivery.",
    "Café au lait, naïve résumé, 日本語, emoji 😀👍 and tabs\tand  double  spaces.",
    "The mitochondria is the powerhouse of the cell; photosynthesis happens in chloroplasts.",
]
TINY_GENERAL = dict(name="Iris Tiny", base_model="iris/tiny-base", finetune="test", license="apache-2.0")
TINY = dict(n_layer=2, hidden=256, n_head=4, n_head_kv=2, ffn=512)  # hidden 256: real Q4_K blocks, not fallbacks


# ---------------------------------------------------------------- helpers


def _rope_rotate_half(x: np.ndarray, pos: int, inv_freq: np.ndarray) -> np.ndarray:
    """HF layout: dimension i pairs with i + d/2 (transformers' rotate_half)."""
    half = x.shape[-1] // 2
    angle = pos * np.concatenate([inv_freq, inv_freq])
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * np.cos(angle) + rotated * np.sin(angle)


def _rope_interleaved(x: np.ndarray, pos: int, inv_freq: np.ndarray) -> np.ndarray:
    """llama.cpp normal rope: dimension 2i pairs with 2i + 1."""
    even, odd = x[..., 0::2], x[..., 1::2]
    cos, sin = np.cos(pos * inv_freq), np.sin(pos * inv_freq)
    out = np.empty_like(x)
    out[..., 0::2], out[..., 1::2] = even * cos - odd * sin, even * sin + odd * cos
    return out


def _unpermute(weight: np.ndarray, n_heads: int) -> np.ndarray:
    rows, cols = weight.shape
    return weight.reshape(n_heads, rows // n_heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory) -> Path:
    """A 2-layer Llama 3.2-style model (bf16 weights, so an F16 GGUF holds them exactly)."""
    from training.random_model import ModelShape, llama_config, save_random_llama
    from training.tokenizer import build_llama3_tokenizer

    tok = build_llama3_tokenizer(CORPUS * 20, vocab_size=800, model_max_length=4096)
    config = llama_config(ModelShape(**TINY), vocab_size=len(tok))
    return save_random_llama(config, tok, tmp_path_factory.mktemp("tiny") / "hf", seed=7)


# ---------------------------------------------------------------- unit tests


def test_permutation_turns_hf_rope_into_llama_cpp_rope():
    rng = np.random.default_rng(0)
    n_heads, head_dim, n_in = 3, 8, 5
    weight, x = rng.normal(size=(n_heads * head_dim, n_in)), rng.normal(size=n_in)
    inv_freq = 1.0 / 10000 ** (np.arange(0, head_dim, 2) / head_dim)
    hf_q = (weight @ x).reshape(n_heads, head_dim)
    gguf_q = (permute_for_gguf(weight, n_heads) @ x).reshape(n_heads, head_dim)
    for pos in (0, 1, 7, 123):
        hf_rot = _rope_rotate_half(hf_q, pos, inv_freq)
        gguf_rot = _rope_interleaved(gguf_q, pos, inv_freq)
        # same rotated vector, only its components reordered the way the permutation reorders rows
        assert np.allclose(permute_for_gguf(hf_rot.reshape(-1, 1), n_heads).reshape(n_heads, head_dim), gguf_rot)
        # so attention scores q.k are unchanged
        k = rng.normal(size=(n_heads, head_dim))
        k_gguf = permute_for_gguf(k.reshape(-1, 1), n_heads).reshape(n_heads, head_dim)
        assert np.allclose((hf_rot * _rope_rotate_half(k, pos, inv_freq)).sum(-1),
                           (gguf_rot * _rope_interleaved(k_gguf, pos, inv_freq)).sum(-1))
    assert np.array_equal(_unpermute(permute_for_gguf(weight, n_heads), n_heads), weight)


def test_llama3_rope_factors_match_transformers():
    import torch
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    rope = RopeSpec(theta=500000.0, kind="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                    original_context=8192)
    config = LlamaConfig(hidden_size=2048, num_attention_heads=32, rope_theta=rope.theta, rope_scaling={
        "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}, max_position_embeddings=131072)
    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](config, torch.device("cpu"))
    base = 1.0 / (rope.theta ** (np.arange(0, 64, 2) / 64))
    factors = llama3_rope_factors(rope, head_dim=64)
    assert factors.shape == (32,) and factors.dtype == np.float32
    assert factors[0] == 1.0 and factors[-1] == 32.0  # short wavelengths kept, long ones slowed 32x
    assert np.allclose(base / factors, scaled.double().numpy(), rtol=1e-5)


def _tiny_config(**overrides) -> dict:
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 300, **overrides}


def test_refuses_unsupported_architecture(tmp_path):
    _write_json(tmp_path / "config.json", _tiny_config(architectures=["MistralForCausalLM"], model_type="mistral"))
    with pytest.raises(ExportError, match="architecture 'MistralForCausalLM' is not supported.*LlamaForCausalLM"):
        read_llama_spec(tmp_path)
    out = tmp_path / "out" / "m.gguf"
    with pytest.raises(ExportError, match="MistralForCausalLM"):
        export_gguf(tmp_path, out, quant="F16")
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_spec_reads_real_llama_3_2_rope_keys_and_refuses_unknown_rope(tmp_path):
    rope_scaling = {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                    "original_max_position_embeddings": 8192, "rope_type": "llama3"}
    _write_json(tmp_path / "config.json", _tiny_config(rope_theta=500000.0, rope_scaling=rope_scaling))
    assert read_llama_spec(tmp_path).rope == RopeSpec(500000.0, "llama3", 32.0, 1.0, 4.0, 8192)
    _write_json(tmp_path / "config.json", _tiny_config(rope_scaling={"rope_type": "yarn", "factor": 4.0}))
    with pytest.raises(ExportError, match="rope scaling type 'yarn' is not supported"):
        read_llama_spec(tmp_path)


def test_refuses_unsupported_tokenizers(tiny_hf, tmp_path):
    tok = json.loads((tiny_hf / "tokenizer.json").read_text(encoding="utf-8"))
    gpt2_regex = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
    tok["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": gpt2_regex}
    shutil.copy(tiny_hf / "tokenizer_config.json", tmp_path)
    _write_json(tmp_path / "tokenizer.json", tok)
    with pytest.raises(ExportError, match="pre-tokenizer .* is not supported: .*llama-bpe"):
        read_tokenizer(tmp_path, 800)
    tok["model"]["type"] = "Unigram"
    _write_json(tmp_path / "tokenizer.json", tok)
    with pytest.raises(ExportError, match="tokenizer model 'Unigram' is not supported"):
        read_tokenizer(tmp_path, 800)


def test_quant_names_map_to_llama_cpp_ftypes():
    import llama_cpp

    assert ftype_constant("Q4_K_M") == "LLAMA_FTYPE_MOSTLY_Q4_K_M" and ftype_value("Q4_K_M") == 15
    assert ftype_constant("F32") == "LLAMA_FTYPE_ALL_F32"
    for quant in QUANT_TYPES:
        assert isinstance(getattr(llama_cpp, ftype_constant(quant)), int), quant


def test_bad_quant_name_is_refused_before_any_work(tiny_hf, tmp_path):
    with pytest.raises(ValueError, match="unknown quant 'Q4_K_X'; expected one of .*Q4_K_M"):
        export_gguf(tiny_hf, tmp_path / "m.gguf", quant="Q4_K_X")
    assert list(tmp_path.iterdir()) == []


def _edited_copy(hf_dir: Path, dest: Path, edit) -> Path:
    """Copy a model folder and apply `edit(weights_dict)` to its safetensors."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(hf_dir, dest)
    weights = load_file(dest / "model.safetensors")
    edit(weights)
    save_file(weights, dest / "model.safetensors", metadata={"format": "pt"})
    return dest


def test_failed_export_leaves_no_partial_file(tiny_hf, tmp_path):
    """A tensor that overflows F16 is only found mid-write; nothing may be left behind."""
    import torch

    def overflow(weights):
        weights["model.layers.1.mlp.down_proj.weight"][0, 0] = torch.tensor(1e6, dtype=torch.bfloat16)

    broken = _edited_copy(tiny_hf, tmp_path / "hf", overflow)
    out_dir = tmp_path / "out"
    with pytest.raises(ExportError, match="blk.1.ffn_down.weight overflows float16"):
        export_gguf(broken, out_dir / "m-Q4_K_M.gguf", quant="Q4_K_M")
    assert list(out_dir.iterdir()) == []


def test_refuses_missing_and_unknown_tensors(tiny_hf, tmp_path):
    missing = _edited_copy(tiny_hf, tmp_path / "missing", lambda w: w.pop("model.layers.1.mlp.up_proj.weight"))
    with pytest.raises(ExportError, match="weights lack blk.1.ffn_up.weight"):
        export_gguf(missing, tmp_path / "out" / "m.gguf", quant="F16")
    extra = _edited_copy(tiny_hf, tmp_path / "extra", lambda w: w.update({"model.vision.proj": w["model.norm.weight"].clone()}))
    with pytest.raises(ExportError, match="tensor 'model.vision.proj' is not part of a Llama model"):
        export_gguf(extra, tmp_path / "out" / "m.gguf", quant="F16")
    assert list((tmp_path / "out").iterdir()) == []


def test_spec_reads_llama_3_2_style_config(tiny_hf):
    spec = read_llama_spec(tiny_hf)
    assert spec == LlamaSpec(
        n_layer=2, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, head_dim=64, vocab_size=spec.vocab_size,
        context_length=131072, rms_eps=1e-5, tied_embeddings=True, name_or_path=spec.name_or_path,
        rope=RopeSpec(theta=500000.0, kind="llama3", factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0,
                      original_context=8192),
    )


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def exported(tiny_hf, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf") / "tiny-Q4_K_M.gguf"
    return export_gguf(tiny_hf, out, quant="Q4_K_M", verify=True, keep_f16=True, **TINY_GENERAL)


def test_end_to_end_parity_checks(exported):
    report = exported.report
    assert report["passed"], report["summary"]
    assert report["tokenization"]["passed"] and report["tokenization"]["texts"] >= 10, report["tokenization"]
    logits = report["logits"]
    assert logits["argmax_equal"] and logits["max_abs_diff"] < 0.003 and logits["positions"] > 400, logits
    assert report["chat_template"]["passed"] and report["chat_template"]["conversations"] >= 3
    assert 0.5 <= report["top1_agreement"]["agreement"] <= 1.0


def test_end_to_end_files_and_record(exported, tiny_hf):
    assert exported.path.exists() and exported.f16_path == exported.path.with_name("tiny-F16.gguf")
    assert exported.sha256 == sha256_of(exported.path) and exported.size_bytes == exported.path.stat().st_size
    assert exported.size_bytes < exported.f16_path.stat().st_size
    record = json.loads(exported.path.with_name("tiny-Q4_K_M.gguf.json").read_text(encoding="utf-8"))
    assert record["sha256"] == exported.sha256 and record["quant"] == "Q4_K_M"
    assert record["source"] == str(tiny_hf.resolve()) and record["report"]["passed"]
    assert not [p for p in exported.path.parent.iterdir() if p.name.endswith(".tmp")]


def test_end_to_end_gguf_metadata(exported, tiny_hf):
    reader = gguf.GGUFReader(exported.f16_path)
    fields = {name: field.contents() for name, field in reader.fields.items()
              if not name.startswith(("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type"))}
    tensors = {t.name: t for t in reader.tensors}
    assert fields["general.architecture"] == "llama" and fields["general.name"] == "Iris Tiny"
    assert fields["general.base_model.0.name"] == "iris/tiny-base" and fields["general.finetune"] == "test"
    assert fields["general.license"] == "apache-2.0" and fields["general.file_type"] == 1
    assert fields["llama.attention.head_count"] == 4 and fields["llama.attention.head_count_kv"] == 2
    assert fields["llama.rope.freq_base"] == 500000.0 and fields["llama.context_length"] == 131072
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "llama-bpe"
    assert fields["tokenizer.ggml.eos_token_id"] == fields["tokenizer.ggml.eot_token_id"]
    assert fields["tokenizer.chat_template"] == (tiny_hf / "chat_template.jinja").read_text(encoding="utf-8")
    assert "output.weight" not in tensors  # tied embeddings: llama.cpp reuses token_embd
    assert tensors["rope_freqs.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert tensors["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    types = gguf.TokenType
    token_types = reader.fields["tokenizer.ggml.token_type"].contents()
    assert token_types[fields["tokenizer.ggml.bos_token_id"]] == types.CONTROL and token_types[0] == types.NORMAL


def test_end_to_end_both_files_generate(exported, tiny_hf, tmp_path):
    from llama_cpp import Llama

    direct_f16 = export_gguf(tiny_hf, tmp_path / "tiny-F16.gguf", quant="F16", **TINY_GENERAL)
    assert direct_f16.sha256 == sha256_of(exported.f16_path)  # deterministic: same bytes either way
    for path in (exported.f16_path, exported.path):
        llm = Llama(model_path=str(path), n_ctx=256, verbose=False, seed=1)
        out = llm("Where is my order", max_tokens=8, temperature=0.0)
        assert out["usage"]["completion_tokens"] > 0 and isinstance(out["choices"][0]["text"], str)
        chat = llm.create_chat_completion([{"role": "user", "content": "Hi"}], max_tokens=4)
        assert chat["usage"]["prompt_tokens"] > 10  # rendered through the GGUF's own Llama 3 template



def test_cli_refuses_a_missing_folder_with_a_clear_message(tmp_path, capsys):
    from training.cli import main

    assert main(["export", str(tmp_path / "nope"), str(tmp_path / "m.gguf"), "--quant", "Q8_0"]) == 2
    assert "nope is not a folder: pass a Hugging Face model folder" in capsys.readouterr().out


def test_logits_check_notices_a_missing_rope_scaling(tiny_hf, exported, tmp_path):
    """Negative control: the same weights exported without llama3 rope_freqs drift on long prompts."""
    from training.export.convert import GeneralInfo, convert_to_gguf
    from training.export.verify import check_logits

    no_scaling = tmp_path / "hf"
    shutil.copytree(tiny_hf, no_scaling)
    config = json.loads((no_scaling / "config.json").read_text(encoding="utf-8"))
    config["rope_parameters"] = {"rope_type": "default", "rope_theta": 500000.0}
    _write_json(no_scaling / "config.json", config)
    convert_to_gguf(no_scaling, tmp_path / "wrong.gguf", GeneralInfo(name="wrong"))
    wrong = check_logits(tiny_hf, tmp_path / "wrong.gguf")  # HF side still uses llama3 scaling
    assert wrong["max_abs_diff"] > 3 * exported.report["logits"]["max_abs_diff"]


def test_verification_failure_is_raised_and_recorded(tiny_hf, tmp_path):
    """A template that depends on a variable only transformers passes (`documents`) renders differently
    in llama-cpp-python: export_gguf must say so, keep the report, and exit non-zero from the CLI."""
    from training.cli import main
    from training.export import VerificationError

    hf_only = tmp_path / "hf"
    shutil.copytree(tiny_hf, hf_only)
    (hf_only / "chat_template.jinja").write_text(
        "{{ bos_token }}{% if documents is defined %}[docs]{% endif %}"
        "{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}", encoding="utf-8")
    out = tmp_path / "out" / "m-Q8_0.gguf"
    with pytest.raises(VerificationError, match="failed verification: .*chat template MISMATCH") as caught:
        export_gguf(hf_only, out, quant="Q8_0", verify=True)
    assert caught.value.report["tokenization"]["passed"] and caught.value.report["logits"]["passed"]
    record = json.loads(out.with_name("m-Q8_0.gguf.json").read_text(encoding="utf-8"))
    assert record["report"]["passed"] is False and record["sha256"] == sha256_of(out)
    assert main(["export", str(hf_only), str(out), "--quant", "Q8_0", "--verify"]) == 1


# ---------------------------------------------------------------- real SmolLM2 (smollm family, ChatML)


@pytest.fixture(scope="module")
def smollm2_exported(smollm2_hf, tmp_path_factory):
    """import-gguf of the real SmolLM2 Q4_1 file -> our exporter -> Q4_K_M, with every parity check."""
    out = tmp_path_factory.mktemp("smollm2-gguf") / "smollm2-Q4_K_M.gguf"
    return export_gguf(smollm2_hf, out, quant="Q4_K_M", verify=True, keep_f16=True, name="SmolLM2 135M Instruct")


def test_smollm2_export_passes_every_parity_check(smollm2_exported):
    report = smollm2_exported.report
    print(f"\nSmolLM2 export: {report['summary']}")
    assert report["passed"], report["summary"]
    assert report["tokenization"]["texts"] > 250 and report["chat_template"]["renderings"] >= 6
    assert report["logits"]["argmax_flips"] <= 0.01 * report["logits"]["positions"], report["logits"]
    assert report["top1_agreement"]["agreement"] >= 0.8


def test_smollm2_gguf_metadata_matches_the_source(smollm2_exported, smollm2_gguf):
    from training.export.gguf_import import read_fields

    source, ours = read_fields(smollm2_gguf), read_fields(smollm2_exported.f16_path)
    for key in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id",
                "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.unknown_token_id",
                "tokenizer.ggml.add_bos_token", "tokenizer.chat_template", "tokenizer.ggml.tokens",
                "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "llama.context_length", "llama.rope.freq_base",
                "llama.attention.head_count_kv", "llama.vocab_size"):
        assert ours[key] == source[key], key
    assert ours["tokenizer.ggml.eot_token_id"] == 2  # <|im_end|> closes every ChatML turn
    names = {t.name for t in gguf.GGUFReader(smollm2_exported.f16_path).tensors}
    assert "output.weight" not in names and "rope_freqs.weight" not in names  # tied, no rope scaling
