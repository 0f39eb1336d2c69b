"""The whole rebuild on a tiny randomly initialised Llama from the fixture files (CPU, offline):
LoRA and QLoRA, masks in the trainer's own batches, falling loss, merge parity, verified GGUF,
eval report, dry-run publish, registry update, and resume after a killed training process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
pytestmark = pytest.mark.filterwarnings("ignore")


def build_tiny_base(folder: Path) -> Path:
    """A 2-layer random Llama with a Llama-3-style tokenizer trained on the fixture texts."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from training.tokenizer import build_llama3_tokenizer

    texts = [line for f in ("finetome.jsonl", "bitext.csv", "exam.jsonl")
             for line in (FIXTURES / f).read_text(encoding="utf-8", errors="replace").splitlines()]
    tokenizer = build_llama3_tokenizer(texts, vocab_size=1024, model_max_length=1024)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_registry(path: Path, base: Path, entries: list[dict]) -> Path:
    """A registry with a local base entry and fine-tune entries on the tiny base."""
    data = {"hub_owner": "iris-test", "models": [
        {"id": "tiny-base", "display_name": "Tiny base", "kind": "base", "source": {"local": {"path": "tiny.gguf"}},
         "context_length": 1024},
        *entries,
    ]}
    path.write_text("# test registry: comments must survive the publish update\n" + yaml.safe_dump(data, sort_keys=False))
    return path


def fine_tune_entry(model_id: str, method: str, base: Path, dataset: dict, sft: dict | None = None) -> dict:
    return {
        "id": model_id, "display_name": f"Tiny {model_id}", "kind": "fine-tuned", "base_model": "tiny-base",
        "source": {"hub": {"repo": "{hub_owner}/" + model_id, "filename": f"{model_id}-Q4_K_M.gguf"}},
        "context_length": 1024, "published": False, "license": "apache-2.0",
        "recipe": {
            "base_checkpoint": str(base), "method": method, "seed": 3,
            "lora": {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear"},
            "datasets": [dataset],
            "sft": {"max_length": 256, "learning_rate": 3.0e-3, "per_device_train_batch_size": 4, "num_train_epochs": 3,
                    "assistant_only_loss": True, "packing": False, "bf16": False, "logging_steps": 1,
                    "save_steps": 5, "gradient_checkpointing": True, "lr_scheduler_type": "constant", **(sft or {})},
        },
    }


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("tiny-base"))
