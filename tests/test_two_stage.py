"""Two-stage training on the offline demo base (CPU, a few steps per stage): a recipe whose `base_checkpoint` is
`run:<model-id>` trains from that model's merged run output; `rebuild` of the second stage rebuilds the first when
its merged model is missing, and says so; the registry refuses an unknown id, a cycle, a stage without a LoRA recipe
and a base_model that is not the first stage."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml

from serving.registry import RegistryError, parse_registry

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "models" / "demo"
pytestmark = pytest.mark.filterwarnings("ignore")


def recipe(base: str, data: str) -> dict:
    return {"base_checkpoint": base, "method": "lora", "seed": 7,
            "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": "all-linear"},
            "datasets": [{"format": "chat_jsonl", "path": str(REPO / "data" / "demo" / data), "rows": 40,
                          "test_size": 0.1}],
            "sft": {"max_length": 256, "learning_rate": 3.0e-3, "per_device_train_batch_size": 4, "logging_steps": 1,
                    "bf16": False, "assistant_only_loss": True},
            "export": {"quant": "Q4_K_M", "verify": False}}


def entry(model_id: str, base_model: str, base_checkpoint: str, data: str) -> dict:
    return {"id": model_id, "display_name": model_id, "kind": "fine-tuned", "base_model": base_model,
            "context_length": 1024, "published": False, "license": "apache-2.0",
            "source": {"local": {"path": f"models/{model_id}-Q4_K_M.gguf"}},
            "recipe": recipe(base_checkpoint, data)}


def registry_data() -> dict:
    return {"hub_owner": "iris-test", "models": [
        {"id": "demo-base", "display_name": "Demo base", "kind": "base", "context_length": 1024,
         "source": {"local": {"path": str(DEMO / "demo-base-Q4_K_M.gguf")}}},
        entry("tiny-general", "demo-base", str(DEMO / "demo-base-hf"), "general.jsonl"),
        entry("tiny-study", "tiny-general", "run:tiny-general", "study.jsonl"),
    ]}


def rebuild(folder: Path, model_id: str) -> None:
    from training.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HF_TOKEN", raising=False)
        assert main(["rebuild", model_id, "--registry", str(folder / "registry.yaml"), "--runs-dir",
                     str(folder / "runs"), "--max-steps", "2", "--max-new-tokens", "4"]) == 0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A registry of demo-base -> tiny-general (LoRA on general chat) -> tiny-study (LoRA on study drills), and
    one `rebuild tiny-study` from nothing."""
    if not (DEMO / "demo-base-hf" / "config.json").exists():
        pytest.fail(f"{DEMO / 'demo-base-hf'} missing: run `python -m training build-demo`")
    folder = tmp_path_factory.mktemp("two-stage")
    (folder / "registry.yaml").write_text(yaml.safe_dump(registry_data(), sort_keys=False))
    rebuild(folder, "tiny-study")
    return folder


def stage(folder: Path, model_id: str, name: str) -> dict:
    return json.loads((folder / "runs" / model_id / name / "stage.json").read_text())


def test_the_second_stage_rebuilds_the_first_and_trains_from_its_merged_model(workspace, capsys):
    general, study = workspace / "runs" / "tiny-general", workspace / "runs" / "tiny-study"
    assert (general / "merge" / "model" / "config.json").exists()
    assert not (general / "export").exists()  # the first stage is built as far as the second needs
    train = stage(workspace, "tiny-study", "train")["metrics"]
    assert train["base_checkpoint"] == str(general / "merge" / "model") and train["global_step"] == 2
    record = json.loads((study / "run.json").read_text())
    assert record["recipe"]["base_checkpoint"] == "run:tiny-general"
    assert list(record["stages"]) == ["prepare", "train", "merge", "export", "eval", "publish"]
    assert (workspace / "models" / "tiny-study-Q4_K_M.gguf").exists()  # installed where the registry serves it


def test_the_merged_second_stage_is_the_first_stage_plus_its_own_adapter(workspace):
    import torch
    from transformers import AutoModelForCausalLM

    from training.stages.merge import load_with_adapter

    general, study = workspace / "runs" / "tiny-general", workspace / "runs" / "tiny-study"
    adapter = study / "train" / "adapter"
    merged = AutoModelForCausalLM.from_pretrained(study / "merge" / "model", dtype=torch.bfloat16).state_dict()
    on_first = load_with_adapter(str(general / "merge" / "model"), adapter, "bfloat16").merge_and_unload().state_dict()
    on_base = load_with_adapter(str(DEMO / "demo-base-hf"), adapter, "bfloat16").merge_and_unload().state_dict()
    name = "model.layers.0.self_attn.q_proj.weight"
    assert all(torch.equal(merged[k], on_first[k]) for k in merged)
    assert not torch.equal(merged[name], on_base[name])


def test_a_missing_first_stage_is_rebuilt_and_said_so_and_an_up_to_date_one_is_skipped(workspace, capsys):
    general = workspace / "runs" / "tiny-general"
    capsys.readouterr()
    rebuild(workspace, "tiny-study")
    out = capsys.readouterr().out
    assert "tiny-general's run is brought up to date first" in out
    assert "[train] running" not in out and "[merge] running" not in out
    shutil.rmtree(general)
    rebuild(workspace, "tiny-study")
    out = capsys.readouterr().out
    assert (f"[rebuild] tiny-study starts from run:tiny-general: tiny-general's run has no merged model "
            f"({general / 'merge' / 'model'}), so it is rebuilt first") in out
    assert out.count("[train] running") == 1 and out.count("[merge] running") == 1  # the first stage's only
    assert (general / "merge" / "model" / "config.json").exists()
    # the same first stage again (same data, seed, steps): the second stage's fingerprints still hold
    assert out.index("[merge] running") < out.index("[prepare] up to date", out.index("[merge] running"))


def test_a_stage_command_names_the_missing_first_stage(workspace, tmp_path):
    from training.cli import main

    with pytest.raises(SystemExit, match=r"tiny-study starts from run:tiny-general, which has no merged model .*"
                                         r"run `python -m training rebuild tiny-study` \(it trains tiny-general first\)"):
        main(["prepare", "tiny-study", "--registry", str(workspace / "registry.yaml"), "--runs-dir", str(tmp_path)])


def _with(change) -> dict:
    data = copy.deepcopy(registry_data())
    change({m["id"]: m for m in data["models"]})
    return data


@pytest.mark.parametrize("change, message", [
    (lambda m: m["tiny-study"]["recipe"].update(base_checkpoint="run:no-such-model"),
     r"entry 'tiny-study' \(#3\), field 'recipe.base_checkpoint': run:no-such-model names an unknown model id"),
    (lambda m: m["tiny-general"].update(base_model="tiny-study",
                                        recipe=recipe("run:tiny-study", "general.jsonl")),
     r"field 'recipe.base_checkpoint': the stages form a cycle: tiny-general -> tiny-study -> tiny-general"),
    (lambda m: m["tiny-study"]["recipe"].update(base_checkpoint="run:demo-base"),
     r"run:demo-base has no LoRA/QLoRA recipe"),
    (lambda m: m["tiny-study"].update(base_model="demo-base"),
     r"run:tiny-general differs from base_model 'demo-base'"),
    (lambda m: m["tiny-study"]["recipe"].update(base_checkpoint="run:Not An Id"),
     r"'run:Not An Id': `run:` must be followed by a registry model id"),
])
def test_the_registry_refuses_a_run_base_it_cannot_build(change, message):
    with pytest.raises(RegistryError, match=message):
        parse_registry(_with(change), REPO / "model_registry.yaml")


def test_a_run_base_is_typed():
    registry = parse_registry(registry_data(), REPO / "model_registry.yaml")
    assert registry.get("tiny-study").recipe.run_base == "tiny-general"
    assert registry.get("tiny-general").recipe.run_base is None


def test_a_bf16_first_stage_trains_in_float32_on_a_cpu_without_bf16(tmp_path):
    """A merged stage is saved in bf16; bf16 matmuls on a CPU without AVX512-BF16/AMX made SmolLM2's second stage
    crawl (< 3 steps in 8 minutes), so LoRA loads it in float32 there."""
    import torch
    from transformers import AutoModelForCausalLM

    from serving.cpu import cpu_flags
    from training.sft import speed
    from training.sft.trainer import TrainPlan, load_model

    if torch.cuda.is_available() or speed.cpu_bf16(cpu_flags()):
        pytest.skip("this machine trains bf16 fast: weights stay as saved")
    AutoModelForCausalLM.from_pretrained(DEMO / "demo-base-hf", dtype=torch.bfloat16).save_pretrained(tmp_path)
    plan = TrainPlan(base_checkpoint=str(tmp_path), method="lora", lora={"r": 4}, sft={}, seed=0,
                     output_dir=tmp_path / "out")
    assert {p.dtype for p in load_model(plan).parameters()} == {torch.float32}
