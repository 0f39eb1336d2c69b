"""Adapter exporter: a random r=4 peft LoRA on every projection of a tiny Llama (GQA, llama3 rope), exported
with `python -m training export-adapter`, loaded over our exporter's F32 base in the real llama.cpp and
compared with peft's merged model in transformers; plus the refusals, and the same on the real SmolLM2.
Nothing trains and nothing mocks llama.cpp or peft."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import numpy as np
import pytest

from training.cli import main
from training.export import ExportError
from training.export.adapter import export_adapter
from training.export.convert import permute_for_gguf

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
TINY = dict(n_layer=2, hidden=64, n_head=4, n_head_kv=2, ffn=128)
CORPUS = [
    "Where is my order? I paid with a card on Monday and the tracking page still says pending.",
    "Refunds take 5 to 10 business days. Order 12345 shipped on 2024-07-26 via express delivery.",
    "def greet(name):\n    return f'Hello, {name}!'\n\nprint(greet('Iris'))",
]


def _tiny_base(out: Path, **shape) -> Path:
    from training.random_model import ModelShape, llama_config, save_random_llama
    from training.tokenizer import build_llama3_tokenizer

    tok = build_llama3_tokenizer(CORPUS * 20, vocab_size=600, model_max_length=4096)
    config = llama_config(ModelShape(**{**TINY, **shape}), vocab_size=len(tok))
    return save_random_llama(config, tok, out, seed=3, dtype="float32")


def random_lora(base_dir: Path, out: Path, rank: int = 4, seed: int = 0, scale: float = 0.05,
                targets: tuple[str, ...] = PROJECTIONS) -> Path:
    """A peft LoRA on `targets` (default all seven projections) with random non-zero A and B (B A far from zero)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets),
                                                  lora_dropout=0.0, task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return _tiny_base(tmp_path_factory.mktemp("base") / "hf")


@pytest.fixture(scope="module")
def tiny_adapter(tiny_base, tmp_path_factory) -> Path:
    return random_lora(tiny_base, tmp_path_factory.mktemp("adapter") / "adapter")


@pytest.fixture(scope="module")
def exported(tiny_adapter, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gguf") / "tiny-lora.gguf"
    return export_adapter(tiny_adapter, out, verify=True)  # base from adapter_config's base_model_name_or_path


def test_llama_cpp_base_plus_adapter_matches_the_merged_model(exported):
    report = exported["verification"]
    assert report["passed"], report["summary"]
    assert report["greedy_equal"] and all(len(t) == 8 for t in report["greedy"]["llama_cpp"]), report["greedy"]
    logits = report["logits"]
    assert logits["argmax_equal"] and logits["max_abs_diff"] < 0.003 and logits["positions"] > 300, logits


def test_adapter_changes_the_model(tiny_base, exported, tmp_path):
    """The comparison above is meaningful: llama.cpp's base alone is far from the merged model."""
    from training.export.convert import GeneralInfo, convert_to_gguf
    from training.export.verify import LOGITS_PROMPTS, _prompt_ids, gguf_logits

    convert_to_gguf(tiny_base, tmp_path / "base.gguf", GeneralInfo(name="base"), "F32")
    batch = _prompt_ids(tiny_base, LOGITS_PROMPTS[:1])
    plain = gguf_logits(tmp_path / "base.gguf", batch)[0]
    adapted = gguf_logits(tmp_path / "base.gguf", batch, lora_path=Path(exported["path"]))[0]
    assert np.abs(plain - adapted).max() > 50 * exported["verification"]["logits"]["max_abs_diff"]


def test_verify_catches_q_k_without_the_rope_permutation(tiny_base, tmp_path, monkeypatch):
    """B's rows must be permuted like the base q/k weight's: the same strong adapter (B A much larger than
    the random base's weights, so attention depends on it) passes exported as is and fails unpermuted."""
    import training.export.adapter as adapter_module

    strong = random_lora(tiny_base, tmp_path / "strong", scale=0.2)
    record = export_adapter(strong, tmp_path / "ok.gguf", out_type="F32", verify=True)
    assert record["verification"]["logits"]["max_abs_diff"] < 0.003, record["verification"]["summary"]
    monkeypatch.setattr(adapter_module, "permute_for_gguf", lambda weight, n_heads: weight)
    with pytest.raises(ExportError, match="failed verification: logits max.*greedy DIFFERENT"):
        export_adapter(strong, tmp_path / "unpermuted.gguf", out_type="F32", verify=True)
    assert not (tmp_path / "unpermuted.gguf").exists()


def test_a_base_llama_cpp_refuses_is_an_error_not_the_bare_base(tiny_adapter, exported, tmp_path):
    """llama.cpp refuses a LoRA whose shapes do not fit the base at load (NULL from llama_adapter_lora_init);
    the verifier says so instead of silently running the base alone."""
    from training.export.convert import GeneralInfo, convert_to_gguf
    from training.export.verify import gguf_logits

    wider = _tiny_base(tmp_path / "wider", ffn=192)
    convert_to_gguf(wider, tmp_path / "wider.gguf", GeneralInfo(name="wider"), "F32")
    with pytest.raises(ExportError, match="llama.cpp refused the LoRA adapter"):
        gguf_logits(tmp_path / "wider.gguf", [[1, 2, 3]], lora_path=Path(exported["path"]))


def test_gguf_layout_is_what_llama_cpp_reads(exported, tiny_adapter):
    from safetensors.numpy import load_file

    reader = gguf.GGUFReader(exported["path"])
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    assert fields["general.type"] == "adapter" and fields["general.architecture"] == "llama"
    assert fields["adapter.type"] == "lora" and fields["adapter.lora.alpha"] == 8.0
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == TINY["n_layer"] * len(PROJECTIONS) * 2 == exported["tensors"]
    # ne = (n_in, r) for lora_a and (r, n_out) for lora_b: llama-adapter.cpp's shape checks
    assert list(tensors["blk.1.ffn_down.weight.lora_a"].shape) == [TINY["ffn"], 4]
    assert list(tensors["blk.1.ffn_down.weight.lora_b"].shape) == [4, TINY["hidden"]]
    # q/k: B's output rows are permuted like the base weight's, A is not
    peft = load_file(str(tiny_adapter / "adapter_model.safetensors"))
    key = "base_model.model.model.layers.0.self_attn.k_proj.lora_{}.weight"
    got_b = np.array(tensors["blk.0.attn_k.weight.lora_b"].data, dtype=np.float32)
    np.testing.assert_allclose(got_b, permute_for_gguf(peft[key.format("B")], TINY["n_head_kv"]), atol=1e-3)
    np.testing.assert_allclose(np.array(tensors["blk.0.attn_k.weight.lora_a"].data, dtype=np.float32),
                               peft[key.format("A")], atol=1e-3)
    record = json.loads(Path(exported["path"] + ".json").read_text())
    assert record["sha256"] == exported["sha256"] and record["rank"] == [4] and record["type"] == "F16"


def test_cli_finds_the_adapter_in_a_run_folder(tiny_adapter, tiny_base, tmp_path, capsys):
    run = tmp_path / "runs" / "tiny-support"
    shutil.copytree(tiny_adapter, run / "train" / "adapter")
    out = tmp_path / "lora.gguf"
    assert main(["export-adapter", str(run), str(out), "--base", str(tiny_base), "--type", "F32"]) == 0
    assert "LoRA rank [4]" in capsys.readouterr().out
    assert gguf.GGUFReader(out).tensors[0].tensor_type == gguf.GGMLQuantizationType.F32


# ---------------------------------------------------------------- refusals, before llama.cpp sees the file


def _edited_adapter(adapter: Path, dest: Path, config_edit=None, tensors_edit=None) -> Path:
    from safetensors.numpy import load_file, save_file

    shutil.copytree(adapter, dest)
    if config_edit:
        cfg = json.loads((dest / "adapter_config.json").read_text())
        config_edit(cfg)
        (dest / "adapter_config.json").write_text(json.dumps(cfg))
    if tensors_edit:
        tensors = load_file(str(dest / "adapter_model.safetensors"))
        tensors_edit(tensors)
        save_file(tensors, str(dest / "adapter_model.safetensors"))
    return dest


def test_refuses_a_folder_without_adapter_config(tiny_adapter, tmp_path, capsys):
    folder = tmp_path / "not-an-adapter"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes((tiny_adapter / "adapter_model.safetensors").read_bytes())
    assert main(["export-adapter", str(folder), str(tmp_path / "x.gguf")]) == 2
    assert "has no adapter_config.json" in capsys.readouterr().out
    assert not (tmp_path / "x.gguf").exists()


def test_refuses_a_non_llama_base(tiny_adapter, tiny_base, tmp_path):
    other = tmp_path / "base"
    shutil.copytree(tiny_base, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "architectures": ["Qwen2ForCausalLM"]}))
    with pytest.raises(ExportError, match="architecture 'Qwen2ForCausalLM' is not supported"):
        export_adapter(tiny_adapter, tmp_path / "x.gguf", base=other)


def test_refuses_an_adapter_whose_shapes_do_not_fit_the_base(tiny_adapter, tmp_path):
    wider = _tiny_base(tmp_path / "wider", ffn=192)
    fit = r"layers\.0\.mlp\.down_proj: lora_A \(4, 128\) / lora_B \(64, 4\) do not fit the base's 64x192 weight"
    with pytest.raises(ExportError, match=fit + r".*wrong --base"):
        export_adapter(tiny_adapter, tmp_path / "x.gguf", base=wider)
    assert not (tmp_path / "x.gguf").exists()


def test_refuses_mismatched_ranks(tiny_adapter, tiny_base, tmp_path):
    key = "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"

    def drop_a_row(tensors):
        tensors[key] = tensors[key][:3].copy()

    bad = _edited_adapter(tiny_adapter, tmp_path / "bad", tensors_edit=drop_a_row)
    with pytest.raises(ExportError, match=r"v_proj: lora_A \(3, 64\) / lora_B \(32, 4\) do not fit"):
        export_adapter(bad, tmp_path / "x.gguf", base=tiny_base)


@pytest.mark.parametrize("key,value", [("use_dora", True), ("use_rslora", True), ("bias", "lora_only"),
                                       ("alpha_pattern", {"q_proj": 2}), ("peft_type", "IA3"),
                                       ("modules_to_save", ["lm_head"])])
def test_refuses_what_llama_cpp_would_apply_differently(tiny_adapter, tiny_base, tmp_path, key, value):
    bad = _edited_adapter(tiny_adapter, tmp_path / "bad", config_edit=lambda cfg: cfg.update({key: value}))
    with pytest.raises(ExportError, match=rf"{key}.* is not supported"):
        export_adapter(bad, tmp_path / "x.gguf", base=tiny_base)


def test_refuses_lora_on_the_embeddings(tiny_adapter, tiny_base, tmp_path):
    def add_embedding_lora(tensors):
        tensors["base_model.model.lm_head.lora_A.weight"] = np.zeros((4, TINY["hidden"]), np.float32)
        tensors["base_model.model.lm_head.lora_B.weight"] = np.zeros((600, 4), np.float32)

    bad = _edited_adapter(tiny_adapter, tmp_path / "bad", tensors_edit=add_embedding_lora)
    with pytest.raises(ExportError, match="LoRA on 'lm_head' is not supported"):
        export_adapter(bad, tmp_path / "x.gguf", base=tiny_base)


# ---------------------------------------------------------------- real SmolLM2


@pytest.mark.slow
def test_smollm2_random_adapter_verifies(smollm2_hf, tmp_path):
    adapter = random_lora(smollm2_hf, tmp_path / "adapter", scale=0.02)
    record = export_adapter(adapter, tmp_path / "smollm2-lora.gguf", verify=True)
    report = record["verification"]
    print(f"\nSmolLM2 adapter: {report['summary']}")
    assert report["passed"] and report["greedy_equal"], report["summary"]
    assert record["tensors"] == 30 * 7 * 2
