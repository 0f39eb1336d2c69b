"""The demo's small training loop and its settings, read from a registry recipe's `sft` keys.

The keys keep TRL `SFTConfig`'s names (learning_rate, num_train_epochs, max_length, ...) so a
demo recipe reads like every other recipe; the loop itself is plain PyTorch because on two
CPU cores TRL/accelerate's per-step overhead would eat a large share of the 10-minute budget.
It trains whatever model it is given on ready-made blocks; it knows nothing of files.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, fields

import torch

from training.demo.data import Example


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one demo training stage (TRL SFTConfig key names)."""

    max_length: int = 256
    """Tokens per packed block."""
    learning_rate: float = 1e-3
    """Peak AdamW learning rate."""
    num_train_epochs: float = 1.0
    """Passes over the packed blocks (fractions allowed)."""
    per_device_train_batch_size: int = 16
    """Blocks per optimizer step."""
    warmup_steps: float = 0.05
    """Linear warm-up steps before the cosine decay; below 1, a fraction of all steps (transformers 5's rule)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    assistant_only_loss: bool = False
    """Take the loss on assistant reply tokens only."""

    def __post_init__(self) -> None:
        if self.max_length < 16 or self.learning_rate <= 0 or self.num_train_epochs <= 0:
            raise ValueError(f"sft settings out of range: {self}")

    @classmethod
    def from_recipe(cls, sft: dict, where: str) -> "TrainSettings":
        """Build from a recipe's `sft` mapping; unknown keys are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(sft) - known)
        if unknown:
            raise ValueError(f"{where}: sft keys {unknown} are not supported by the demo trainer; "
                             f"use only {sorted(known)}")
        return cls(**sft)

    def total_steps(self, n_blocks: int) -> int:
        return max(1, math.ceil(n_blocks * self.num_train_epochs / self.per_device_train_batch_size))


def lr_at(step: int, total: int, settings: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    steps = settings.warmup_steps
    warmup = max(1, int(steps) if steps >= 1 else int(total * steps))
    if step < warmup:
        return settings.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return settings.learning_rate * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def batches(blocks: list[Example], settings: TrainSettings, seed: int) -> list[list[Example]]:
    """Seeded shuffled order over as many epochs as needed, cut into `total_steps` batches."""
    rng = random.Random(seed)
    size = settings.per_device_train_batch_size
    order: list[Example] = []
    while len(order) < settings.total_steps(len(blocks)) * size:
        epoch = list(blocks)
        rng.shuffle(epoch)
        order += epoch
    return [order[i * size:(i + 1) * size] for i in range(settings.total_steps(len(blocks)))]


def to_tensors(batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor([e.input_ids for e in batch]), torch.tensor([e.labels for e in batch])


def train(model: torch.nn.Module, blocks: list[Example], settings: TrainSettings, seed: int,
          on_step: Callable[[int, float], None] = lambda step, loss: None) -> list[float]:
    """Train `model` in place on `blocks`; returns the loss of every step."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay,
                                  fused=True)
    plan = batches(blocks, settings, seed)
    losses = []
    model.train()
    for step, batch in enumerate(plan):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, len(plan), settings)
        input_ids, labels = to_tensors(batch)
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        on_step(step, losses[-1])
    model.eval()
    return losses
