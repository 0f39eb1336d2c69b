"""Speed settings the machine picks when the recipe does not: attention kernel, fused kernels, batch shape.

On a CUDA GPU, packed (padding-free) batches train fastest with flex attention, whose block-sparse
document mask skips the attention between rows packed together (SDPA computes the whole packed
sequence against a dense block-diagonal mask), with Liger's fused RMSNorm/SwiGLU/RoPE kernels when
`liger-kernel` is installed, and with the gradient checkpoints offloaded to pinned CPU memory
(TRL's `activation_offloading`: -0.8 GiB for 4% of the speed at 1B). Flex attention is compiled on
its first step (about 3 minutes with a cold cache), so it is only chosen when the run is long
enough to pay that back, and then every batch is padded to one shape so it compiles once;
Inductor caches the compiled kernels on disk, so later runs on the machine start in seconds.
On a CPU flex attention and Liger stay off (flex has no CPU backward, Liger's kernels are Triton code),
but bf16 autocast is the default where the CPU multiplies bf16 natively (AVX-512 BF16 or AMX): measured
1.37x the tokens/s of fp32 training on SmolLM2-135M, losses within 0.05 (benchmarks/RESULTS-cpu-inference.md).

Each value is one a recipe can set itself (`recipe.sft` keys, `train --attn`), and a recipe's own
value always wins; these are defaults of the one training path, not a second trainer.
Measurements behind the numbers: benchmarks/RESULTS-gpu-qlora.md.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any

AUTO = "auto"
SDPA = "sdpa"  # fused attention that works on CPU and GPU; padding-free batches become a dense block mask
FLEX = "flex_attention"
FLEX_MIN_BATCHES = 200
"""Flex attention's cold-cache compile (182 s) against SDPA + Liger pays back after ~190 micro-batches (1B, batch 8)."""


def liger_installed() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""/proc/cpuinfo flags of CPUs with native bf16 dot products, where bf16 autocast trains faster than fp32."""


def cpu_bf16(flags: set[str]) -> bool:
    """Whether a CPU with these flags should train with bf16 autocast by default."""
    return bool(BF16_CPU_FLAGS & flags)


def sft_defaults(recipe_sft: dict[str, Any], cuda: bool, liger: bool, cpu_bf16: bool = False) -> dict[str, Any]:
    """`recipe.sft` plus the speed keys it leaves unset: GPU kernels on CUDA; on a CPU, bf16 autocast when
    `cpu_bf16` (TrainingArguments accepts bf16 without a GPU only with `use_cpu`)."""
    if not cuda:
        return {"bf16": True, "use_cpu": True, **recipe_sft} if cpu_bf16 and "bf16" not in recipe_sft else dict(recipe_sft)
    defaults = {"use_liger_kernel": True} if liger else {}
    # Offload only the checkpoints (TRL checkpoints by default); without checkpointing it would move every activation.
    if recipe_sft.get("gradient_checkpointing", True):
        defaults["activation_offloading"] = True
    return {**defaults, **recipe_sft}


def micro_batches(num_rows: int, args, world_size: int = 1) -> int:
    """Forward passes this process will run: from `max_steps` when set, else from epochs over the (packed) rows."""
    if args.max_steps > 0:
        return args.max_steps * args.gradient_accumulation_steps
    return math.ceil(num_rows / (args.per_device_train_batch_size * world_size)) * math.ceil(args.num_train_epochs)


def attention(requested: str, cuda: bool, padding_free: bool, batches: int) -> str:
    """The attention implementation: the requested one, or for `auto` flex on a GPU for long padding-free runs."""
    if requested != AUTO:
        return requested
    return FLEX if cuda and padding_free and batches >= FLEX_MIN_BATCHES else SDPA


def fixed_length(args) -> int | None:
    """Pad every flattened padding-free batch to batch size x max_length, so flex attention compiles one shape.

    Best-fit-decreasing packing fills each row to at most max_length, so no batch is longer; the padding is a
    few tokens per batch (labels -100, each pad its own one-token document). None when the recipe pads itself.
    """
    if args.pad_to_multiple_of is not None or args.max_length is None:
        return None
    return args.per_device_train_batch_size * args.max_length
