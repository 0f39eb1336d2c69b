"""`random-model`: exact Llama 3.2 shapes, and a synthetic 128256-id tokenizer that HF and llama.cpp agree on."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.random_model import SHAPES, ModelShape, llama_config, pad_bpe, save_random_llama, synthetic_llama3_tokenizer


@pytest.mark.parametrize(("like", "layers", "hidden", "heads", "kv_heads", "head_dim"), [
    ("llama-3.2-1b", 16, 2048, 32, 8, 64),
    ("llama-3.2-3b", 28, 3072, 24, 8, 128),
])
def test_config_has_the_real_architecture(like, layers, hidden, heads, kv_heads, head_dim):
    config = llama_config(SHAPES[like])
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (layers, hidden, heads)
    assert (config.num_key_value_heads, config.head_dim, config.intermediate_size) == (kv_heads, head_dim, 8192)
    assert config.vocab_size == 128256 and config.tie_word_embeddings and config.max_position_embeddings == 131072
    assert config.rms_norm_eps == 1e-5 and config.rope_parameters == {
        "rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192, "rope_theta": 500000.0}
    assert (config.bos_token_id, config.eos_token_id, config.pad_token_id) == (128000, 128009, 128004)


def test_pad_bpe_adds_real_merges():
    vocab = {"a": 0, "b": 1, "ab": 2}
    padded, merges = pad_bpe(vocab, [("a", "b")], size=6)
    assert len(padded) == 6 and sorted(padded.values()) == list(range(6))
    for left, right in merges:
        assert left in padded and right in padded and left + right in padded
    with pytest.raises(ValueError, match="could not pad"):
        pad_bpe({"a": 0}, [], size=10**7)


def test_synthetic_tokenizer_has_llama3_ids_and_matches_llama_cpp(tmp_path: Path):
    from training.export.convert import GeneralInfo, convert_to_gguf
    from training.export.verify import check_chat_template, check_tokenization

    tok = synthetic_llama3_tokenizer(seed=0)
    assert len(tok) == 128256
    assert tok.convert_tokens_to_ids(["<|begin_of_text|>", "<|eot_id|>"]) == [128000, 128009]
    assert synthetic_llama3_tokenizer(seed=0).backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()
    config = llama_config(ModelShape(n_layer=1, hidden=64, n_head=2, n_head_kv=1, ffn=128))
    hf_dir = save_random_llama(config, tok, tmp_path / "hf", seed=0)
    convert_to_gguf(hf_dir, tmp_path / "m.gguf", GeneralInfo(name="synthetic"))
    tokenization = check_tokenization(hf_dir, tmp_path / "m.gguf")
    assert tokenization["passed"], tokenization["mismatches"][:3]
    assert check_chat_template(hf_dir, tmp_path / "m.gguf")["passed"]
