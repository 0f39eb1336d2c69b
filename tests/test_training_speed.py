"""The speed defaults a machine picks when the recipe is silent (`training.sft.speed`), on CPU:
flex attention and Liger only on a GPU and only where the recipe leaves them unset, flex only for
runs long enough to pay its compile, one padded batch shape with flex, and on a CPU only bf16 autocast,
where the CPU has native bf16."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from training.sft import speed

pytestmark = pytest.mark.filterwarnings("ignore")


def args(**values):
    base = {"max_steps": -1, "gradient_accumulation_steps": 1, "per_device_train_batch_size": 8,
            "num_train_epochs": 1.0, "max_length": 2048, "pad_to_multiple_of": None}
    return SimpleNamespace(**{**base, **values})


def test_liger_and_offloading_are_gpu_defaults_the_recipe_can_refuse():
    gpu = {"use_liger_kernel": True, "activation_offloading": True}
    assert speed.sft_defaults({"packing": True}, cuda=True, liger=True) == {**gpu, "packing": True}
    assert speed.sft_defaults({"use_liger_kernel": False, "activation_offloading": False}, cuda=True, liger=True) == {
        "use_liger_kernel": False, "activation_offloading": False}
    assert speed.sft_defaults({}, cuda=True, liger=False) == {"activation_offloading": True}  # Liger not installed
    # without checkpointing offloading would move every activation: the recipe chose speed over memory
    assert speed.sft_defaults({"gradient_checkpointing": False}, cuda=True, liger=True) == {
        "use_liger_kernel": True, "gradient_checkpointing": False}
    assert speed.sft_defaults({"packing": True}, cuda=False, liger=True) == {"packing": True}  # CPU: Triton is GPU code


@pytest.mark.parametrize(("requested", "cuda", "padding_free", "batches", "expected"), [
    ("auto", True, True, speed.FLEX_MIN_BATCHES, speed.FLEX),
    ("auto", True, True, speed.FLEX_MIN_BATCHES - 1, speed.SDPA),  # too short to pay the compile
    ("auto", True, False, 10_000, speed.SDPA),  # padded batches: nothing for the document mask to skip
    ("auto", False, True, 10_000, speed.SDPA),  # flex attention has no CPU backward
    ("eager", True, True, 10_000, "eager"),  # an explicit choice always wins
    ("flex_attention", False, True, 1, speed.FLEX),
])
def test_attention_choice(requested, cuda, padding_free, batches, expected):
    assert speed.attention(requested, cuda, padding_free, batches) == expected


def test_run_length_counts_forward_passes():
    assert speed.micro_batches(1000, args(max_steps=30, gradient_accumulation_steps=4)) == 120
    assert speed.micro_batches(1000, args(num_train_epochs=2.0)) == 2 * 125
    assert speed.micro_batches(1000, args(num_train_epochs=0.5)) == 125  # a started epoch counts whole
    assert speed.micro_batches(1000, args(), world_size=2) == 63


def test_flex_pads_every_batch_to_one_shape_unless_the_recipe_pads():
    assert speed.fixed_length(args()) == 8 * 2048
    assert speed.fixed_length(args(pad_to_multiple_of=64)) is None
    assert speed.fixed_length(args(max_length=None)) is None


def test_trainer_on_cpu_keeps_sdpa_and_a_gpu_run_would_switch_to_flex(tmp_path):
    """The real build on CPU; then the same trainer handed the GPU decision switches model and collator."""
    from tests.test_training_pipeline import build_tiny_base
    from training.sft.trainer import TrainPlan, build_trainer, use_attention

    base = build_tiny_base(tmp_path / "base")
    rows = [{"messages": [{"role": "user", "content": f"question {i}?"},
                          {"role": "assistant", "content": f"answer {i}."}]} for i in range(12)]
    plan = TrainPlan(base_checkpoint=str(base), method="lora", lora={"r": 4}, seed=0, output_dir=tmp_path / "out",
                     sft={"max_length": 128, "packing": True, "per_device_train_batch_size": 2, "max_steps": 200})
    trainer = build_trainer(plan, rows)
    model = trainer.model.get_base_model()
    assert model.config._attn_implementation == speed.SDPA
    assert not trainer.args.use_liger_kernel and trainer.data_collator.pad_to_multiple_of is None

    assert use_attention(trainer, speed.AUTO, cuda=True) == speed.FLEX
    assert model.config._attn_implementation == speed.FLEX
    assert trainer.data_collator.pad_to_multiple_of == 2 * 128


def test_cpu_default_is_bf16_autocast_where_the_cpu_multiplies_bf16_natively():
    assert speed.cpu_bf16({"avx2", "avx512_bf16"}) and speed.cpu_bf16({"amx_bf16", "amx_tile"})
    assert not speed.cpu_bf16({"avx2", "avx512f", "avx512_vnni"})
    assert speed.sft_defaults({"packing": True}, cuda=False, liger=True, cpu_bf16=True) == {
        "bf16": True, "use_cpu": True, "packing": True}
    assert speed.sft_defaults({"bf16": False}, cuda=False, liger=True, cpu_bf16=True) == {"bf16": False}  # recipe wins
    assert speed.sft_defaults({}, cuda=False, liger=False, cpu_bf16=False) == {}


def test_a_cpu_run_follows_this_cpus_flags_and_trains(tmp_path):
    """The real trainer on this machine: bf16 autocast exactly when its CPU has native bf16; steps train."""
    import math

    from serving.cpu import cpu_flags
    from tests.test_training_pipeline import build_tiny_base
    from training.sft.trainer import TrainPlan, build_trainer

    base = build_tiny_base(tmp_path / "base")
    rows = [{"messages": [{"role": "user", "content": f"question {i}?"},
                          {"role": "assistant", "content": f"answer {i}."}]} for i in range(8)]
    plan = TrainPlan(base_checkpoint=str(base), method="lora", lora={"r": 4}, seed=0, output_dir=tmp_path / "out",
                     sft={"max_length": 128, "per_device_train_batch_size": 2, "max_steps": 2, "save_strategy": "no"})
    trainer = build_trainer(plan, rows)
    assert trainer.args.bf16 == speed.cpu_bf16(cpu_flags())
    assert math.isfinite(trainer.train().training_loss)
