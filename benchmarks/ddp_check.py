"""Multi-GPU check: the unchanged train stage under `accelerate launch` (DDP), LoRA and QLoRA.

Builds the tests' tiny random Llama and a registry on the FineTome-shaped fixture, with the
same recipe three times: `ddp-lora`, `ddp-qlora` (both trained on 2 GPUs) and `one-gpu` (QLoRA on
one GPU, for comparison). Run on a 2-GPU machine:

    python3 benchmarks/ddp_check.py /tmp/ddp
    C="--registry /tmp/ddp/r.yaml --runs-dir /tmp/ddp/runs"
    for m in ddp-lora ddp-qlora one-gpu; do python3 -m training prepare $m $C; done
    for m in ddp-lora ddp-qlora; do accelerate launch --multi_gpu --num_processes 2 -m training train $m $C; done
    CUDA_VISIBLE_DEVICES=0 python3 -m training train one-gpu $C

Under DDP each optimizer step sees both GPUs' batches, so the run takes half the steps of one GPU
and logs about twice the tokens per step; only rank 0 writes the run folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_training_pipeline import FIXTURES, build_tiny_base, fine_tune_entry, write_registry  # noqa: E402


def main(folder: Path) -> None:
    folder.mkdir(parents=True)
    base = build_tiny_base(folder / "base")
    data = {"format": "sharegpt", "path": str(FIXTURES / "finetome.jsonl"), "test_size": 0.1}
    sft = {"bf16": True, "num_train_epochs": 4, "per_device_train_batch_size": 2}
    entries = [fine_tune_entry(model_id, method, base, data, sft=sft)
               for model_id, method in (("ddp-lora", "lora"), ("ddp-qlora", "qlora"), ("one-gpu", "qlora"))]
    write_registry(folder / "r.yaml", base, entries)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
