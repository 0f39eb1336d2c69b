"""Build the SFT trainer from a recipe and record what training did.

One code path for LoRA and QLoRA: the model load only gains a 4-bit quantization config for
QLoRA. TRL's `SFTTrainer` does the masking (assistant-only loss from the training template's
`{% generation %}` markers), packing / padding-free batching and checkpointing; `speed` picks the
attention kernel and fused kernels for the machine where the recipe is silent; this module adds
the loss CSV (train loss, eval loss on the held-out split every `eval_steps`, memory at every
logged step), the PNG loss curve (train and eval) and throughput/memory numbers.
"""

from __future__ import annotations

import csv
import os
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.cpu import cpu_flags
from training.families import of_tokenizer
from training.sft import speed
from training.sft.config import lora_config, quantization_config, sft_config
from training.sft.template import TEMPLATE_KWARGS, check_renders_like

CSV_FIELDS = ["step", "loss", "eval_loss", "learning_rate", "num_tokens", "tokens_per_s",
              "cpu_rss_gib", "gpu_allocated_gib", "gpu_peak_allocated_gib", "gpu_reserved_gib"]



@dataclass(frozen=True)
class TrainPlan:
    """Everything one training run needs, from the recipe plus run-level overrides."""

    base_checkpoint: str
    """Hub id or local folder of the base model."""
    method: str
    """`lora` or `qlora` (QLoRA only adds 4-bit loading)."""
    lora: dict[str, Any]
    """`peft.LoraConfig` keys."""
    sft: dict[str, Any]
    """`trl.SFTConfig` keys."""
    seed: int
    """Seed for initialisation and data order."""
    output_dir: Path
    """Where checkpoints and the final adapter go."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """SFTConfig keys set by the run, not the recipe (e.g. `max_steps` for a smoke run)."""
    attn_implementation: str = speed.AUTO
    """transformers attention implementation; `auto` lets `speed.attention` pick it for the machine and run."""


def load_tokenizer(checkpoint: str):
    """The base tokenizer with its family's training chat template (generation markers) set."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    family = of_tokenizer(tokenizer)
    if tokenizer.chat_template is not None:  # a base model without a template simply gets the family's
        check_renders_like(tokenizer, tokenizer.chat_template, family)
    tokenizer.chat_template = family.training_template_text()
    if tokenizer.pad_token is None and family.pad_token in tokenizer.get_vocab():
        tokenizer.pad_token = family.pad_token  # Meta's tokenizer sets none; TRL would otherwise pad with <|eot_id|>
    return tokenizer


def load_model(plan: TrainPlan):
    """The base model, 4-bit NF4 for QLoRA; 16-bit weights stay as saved for LoRA."""
    import torch
    from transformers import AutoModelForCausalLM

    quant = quantization_config(plan.method)
    # `auto` is decided once the packed dataset's size is known (`use_attention`); SDPA until then.
    attn = speed.SDPA if plan.attn_implementation == speed.AUTO else plan.attn_implementation
    # 4-bit weights must be placed on this process's GPU at load time (one GPU per process under DDP).
    device_map = {"": int(os.environ.get("LOCAL_RANK", 0))} if quant is not None and torch.cuda.is_available() else None
    return AutoModelForCausalLM.from_pretrained(
        plan.base_checkpoint, quantization_config=quant, attn_implementation=attn,
        dtype=torch.bfloat16 if quant is not None else lora_dtype(), device_map=device_map,
    )


def lora_dtype():
    """The weights' dtype for LoRA: as saved, except float32 on a CPU without bf16 instructions. A merged model
    (an earlier stage of `run:<model-id>`) is saved in bf16, and bf16 matmuls without AVX512-BF16/AMX trained
    SmolLM2 at less than 3 steps in 8 minutes on the 2-core AMD EPYC box, against ~23 s a step in float32."""
    import torch

    return "auto" if torch.cuda.is_available() or speed.cpu_bf16(cpu_flags()) else torch.float32


def with_template_kwargs(rows: list[dict]) -> list[dict]:
    """Chat rows get the fixed date string TRL passes to the template; text rows are left as is."""
    return [{**row, "chat_template_kwargs": TEMPLATE_KWARGS} if "messages" in row else row for row in rows]


def build_trainer(plan: TrainPlan, train_rows: list[dict], eval_rows: list[dict] | None = None, model=None, tokenizer=None, callbacks=()):
    """An `SFTTrainer` for the plan; `model`/`tokenizer` may be passed in (benchmarks, tests)."""
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTTrainer

    set_seed(plan.seed)
    cuda = torch.cuda.is_available()
    recipe_sft = speed.sft_defaults(plan.sft, cuda, speed.liger_installed(), speed.cpu_bf16(cpu_flags()))
    recipe_sft = {**eval_defaults(cuda), **recipe_sft} if eval_rows else recipe_sft
    args = sft_config(recipe_sft, str(plan.output_dir), seed=plan.seed, **plan.overrides)
    tokenizer = tokenizer or load_tokenizer(plan.base_checkpoint)
    trainer = SFTTrainer(
        model=model if model is not None else load_model(plan),
        args=args,
        train_dataset=Dataset.from_list(with_template_kwargs(train_rows)),
        eval_dataset=Dataset.from_list(with_template_kwargs(eval_rows)) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=lora_config(plan.lora),
        callbacks=list(callbacks),
    )
    use_attention(trainer, plan.attn_implementation, cuda)
    return trainer


def eval_defaults(cuda: bool) -> dict[str, Any]:
    """With a held-out split, evaluate every `eval_steps` (< 1: a fraction of the run) and at the last step: five
    points of the eval curve on a GPU, where an eval pass is cheap; on a CPU two (half-way and end), since each pass
    over the eval rows costs about one optimizer step there. A recipe's own keys win."""
    return {"eval_strategy": "steps", "eval_steps": 0.25 if cuda else 0.5}


def use_attention(trainer, requested: str, cuda: bool) -> str:
    """Switch the trainer's model to the attention `speed.attention` picks for this run; returns it."""
    args = trainer.args
    batches = speed.micro_batches(len(trainer.train_dataset), args, args.world_size)
    chosen = speed.attention(requested, cuda, trainer.padding_free, batches)
    model = trainer.model.get_base_model() if hasattr(trainer.model, "get_base_model") else trainer.model
    if chosen != model.config._attn_implementation:
        model.set_attn_implementation(chosen)
    if chosen == speed.FLEX and trainer.padding_free:
        trainer.data_collator.pad_to_multiple_of = speed.fixed_length(args) or args.pad_to_multiple_of
    return chosen


# ---------------------------------------------------------------- metrics

GIB = 1024**3


def peak_memory() -> dict[str, float]:
    """Peak GPU memory (allocated by torch) and peak CPU resident memory of this process, in GiB."""
    import torch

    out = {"peak_cpu_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB}
    if torch.cuda.is_available():
        out["peak_gpu_allocated_gib"] = torch.cuda.max_memory_allocated() / GIB
        out["peak_gpu_reserved_gib"] = torch.cuda.max_memory_reserved() / GIB
    return out


def trainable_parameters(model) -> dict[str, float | int]:
    """The LoRA parameters trained and the base's parameter count, by peft's own count
    (`get_nb_trainable_parameters`, which counts a 4-bit QLoRA weight at its unpacked size)."""
    trainable, total = model.get_nb_trainable_parameters()
    base = total - trainable
    return {"trainable_params": int(trainable), "base_params": int(base),
            "trainable_percent": round(100.0 * trainable / base, 4)}


def memory_now() -> dict[str, float]:
    """This process's resident CPU memory and, on CUDA, torch's allocated / peak allocated / reserved GPU memory (GiB)."""
    import torch

    rss_pages = int(Path("/proc/self/statm").read_text().split()[1])
    out = {"cpu_rss_gib": round(rss_pages * os.sysconf("SC_PAGE_SIZE") / GIB, 3)}
    if torch.cuda.is_available():
        out.update(gpu_allocated_gib=round(torch.cuda.memory_allocated() / GIB, 3),
                   gpu_peak_allocated_gib=round(torch.cuda.max_memory_allocated() / GIB, 3),
                   gpu_reserved_gib=round(torch.cuda.memory_reserved() / GIB, 3))
    return out


def metrics_callback(csv_path: Path):
    """A TrainerCallback writing one CSV row per log: train rows (loss, learning rate, tokens, tokens/s) and
    eval rows (eval loss), each with the memory at that step."""
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        def __init__(self) -> None:
            self.rows: list[dict[str, float]] = []
            self.last = (time.perf_counter(), 0.0)

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero and not csv_path.exists():
                csv_path.write_text(",".join(CSV_FIELDS) + "\n")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            if "loss" in logs:
                row = {"step": state.global_step, "loss": logs["loss"], **self._throughput(logs)}
            elif "eval_loss" in logs:
                row = {"step": state.global_step, "eval_loss": logs["eval_loss"]}
                self.last = (time.perf_counter(), self.last[1])  # the next train row's tokens/s leaves eval time out
            else:
                return
            row.update(memory_now())
            self.rows.append(row)
            _append_csv(csv_path, row)

        def _throughput(self, logs: dict[str, float]) -> dict[str, float]:
            now, tokens = time.perf_counter(), float(logs.get("num_tokens", 0.0))
            rate = (tokens - self.last[1]) / max(now - self.last[0], 1e-9) if tokens > self.last[1] else 0.0
            self.last = (now, tokens)
            return {"learning_rate": logs.get("learning_rate", 0.0), "num_tokens": tokens, "tokens_per_s": round(rate, 1)}

    return MetricsCallback()


def _append_csv(path: Path, row: dict[str, float]) -> None:
    with path.open("a", newline="") as handle:
        csv.DictWriter(handle, fieldnames=CSV_FIELDS).writerow(row)


def read_loss_csv(path: Path, kind: str = "loss") -> list[dict[str, float]]:
    """The rows of a metrics CSV that carry `kind` (`loss`: train rows, `eval_loss`: eval rows); empty cells left out."""
    with path.open() as handle:
        rows = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]
    return [row for row in rows if kind in row]


def plot_loss(csv_path: Path, png_path: Path, title: str) -> None:
    """The train and (when logged) eval loss curves of a run as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    drawn = draw_curves(ax, csv_path, "")
    ax.set(xlabel="step", ylabel="loss", title=title if drawn else f"{title} (no step logged yet)")
    if drawn:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


def draw_curves(ax, csv_path: Path, label: str, color=None) -> int:
    """Draw a run's train loss (solid) and eval loss (dashed, dots) on `ax`; returns the rows drawn."""
    train, evals = read_loss_csv(csv_path, "loss"), read_loss_csv(csv_path, "eval_loss")
    prefix = f"{label} " if label else ""
    if train:
        line, = ax.plot([r["step"] for r in train], [r["loss"] for r in train], color=color,
                        marker="." if len(train) < 50 else None, label=f"{prefix}train")
        color = line.get_color()
    if evals:
        ax.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], color=color, linestyle="--",
                marker="o", label=f"{prefix}eval")
    return len(train) + len(evals)
