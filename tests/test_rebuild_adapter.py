"""`rebuild` on the offline demo base (CPU, a few training steps): the export stage writes the LoRA GGUF beside
the merged one and llama.cpp applies it; run.json, the model card and the upload carry both files and the
trainable-parameter count (equal to peft's own and to the adapter file's); `publish` with a token uploads both
GGUFs to a Hub-compatible endpoint on loopback; `rebuild --check` tells a stale adapter by its data sha256."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.hub_server import hub_server

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "models" / "demo"
pytestmark = pytest.mark.filterwarnings("ignore")


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def recipe(data: Path) -> dict:
    return {"base_checkpoint": str(DEMO / "demo-base-hf"), "method": "lora", "seed": 5,
            "lora": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": "all-linear"},
            "datasets": [{"format": "chat_jsonl", "path": str(data), "rows": 48, "test_size": 0.1}],
            "sft": {"max_length": 256, "learning_rate": 3.0e-3, "per_device_train_batch_size": 4, "logging_steps": 1,
                    "bf16": False, "assistant_only_loss": True},
            "export": {"quant": "Q4_K_M", "verify": False}}


def write_registry(folder: Path, data: Path, data_sha: str | None) -> Path:
    adapter = {"base": "demo-base", "local": {"path": "adapters/tiny-adapter-lora-f16.gguf"}}
    models = [
        {"id": "demo-base", "display_name": "Demo base", "kind": "base", "context_length": 1024,
         "source": {"local": {"path": str(DEMO / "demo-base-Q4_K_M.gguf")}}},
        {"id": "tiny-hub", "display_name": "Tiny hub", "kind": "fine-tuned", "base_model": "demo-base",
         "context_length": 1024, "published": False, "license": "apache-2.0", "recipe": recipe(data),
         "source": {"hub": {"repo": "{hub_owner}/tiny-hub", "filename": "tiny-hub-Q4_K_M.gguf"}}},
        {"id": "tiny-adapter", "display_name": "Tiny adapter", "kind": "fine-tuned", "context_length": 1024,
         "recipe": recipe(data), "source": {"adapter": {**adapter, **({"data_sha256": data_sha} if data_sha else {})}}},
        {"id": "tiny-hub-adapter", "display_name": "Tiny Hub adapter", "kind": "fine-tuned", "context_length": 1024,
         "published": False, "recipe": recipe(data), "source": {"adapter": {"base": "demo-base", "hub": {
             "repo": "{hub_owner}/tiny-hub-adapter", "filename": "tiny-hub-adapter-lora-f16.gguf"}}}},
    ]
    path = folder / "registry.yaml"
    path.write_text(yaml.safe_dump({"hub_owner": "iris-test", "models": models}, sort_keys=False))
    return path


def cli(*argv: str) -> int:
    from training.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HF_TOKEN", raising=False)
        return main(list(argv))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    if not (DEMO / "demo-base-hf" / "config.json").exists():
        pytest.fail(f"{DEMO / 'demo-base-hf'} missing: run `python -m training build-demo`")
    folder = tmp_path_factory.mktemp("rebuild-adapter")
    data = folder / "support.jsonl"
    data.write_text((REPO / "data" / "demo" / "support.jsonl").read_text())
    registry = write_registry(folder, data, None)
    common = ["--registry", str(registry), "--runs-dir", str(folder / "runs")]
    assert cli("rebuild", "tiny-hub", *common, "--max-steps", "3", "--max-new-tokens", "8",
               "--heldout-rows", "3", "--task-rows", "2") == 0
    return {"folder": folder, "data": data, "registry": registry, "run": folder / "runs" / "tiny-hub", "common": common}


def stage(run: Path, name: str) -> dict:
    return json.loads((run / "run.json").read_text())["stages"][name]["metrics"]


def test_export_writes_the_adapter_gguf_beside_the_merged_one_and_llama_cpp_applies_it(workspace):
    from llama_cpp import Llama

    export = stage(workspace["run"], "export")
    merged, adapter = Path(export["gguf"]), Path(export["adapter_gguf"])
    assert adapter.name == "tiny-hub-lora-f16.gguf" and adapter.parent == merged.parent
    assert export["adapter_sha256"] == sha256(adapter) and export["adapter_size_bytes"] == adapter.stat().st_size
    assert export["adapter_rank"] == [4] and export["adapter_verification"] is None  # parity: --verify-adapter
    prompt = [1, 300, 301, 302, 303]
    logits = []
    for lora in (None, str(adapter)):
        llm = Llama(model_path=export["base_gguf"], lora_path=lora, n_ctx=64, logits_all=True, verbose=False)
        llm.eval(prompt)
        logits.append([float(x) for x in llm.scores[len(prompt) - 1]])
        llm.close()
    assert max(abs(a - b) for a, b in zip(*logits)) > 1e-3  # the adapter is applied, not silently dropped


def test_rebuild_sizes_its_eval_stage_as_asked(workspace):
    """CI's rebuild of the CPU recipe passes --heldout-rows/--task-rows (scripts/test.sh): the eval stage gets them."""
    report = json.loads((workspace["run"] / "eval" / "report.json").read_text())
    assert report["heldout_examples"] == 3


def test_trainable_parameters_equal_peft_and_the_adapter_file(workspace):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    train = stage(workspace["run"], "train")
    adapter_dir = workspace["run"] / "train" / "adapter"
    in_file = sum(t.numel() for t in load_file(adapter_dir / "adapter_model.safetensors").values())
    base = AutoModelForCausalLM.from_pretrained(DEMO / "demo-base-hf", dtype=torch.float32)
    base_params = sum(p.numel() for p in base.parameters())
    peft_trainable, _ = PeftModel.from_pretrained(base, adapter_dir, is_trainable=True).get_nb_trainable_parameters()
    assert train["trainable_params"] == in_file == peft_trainable > 0
    assert train["base_params"] == base_params
    assert train["trainable_percent"] == pytest.approx(100 * in_file / base_params, rel=1e-3)


def test_card_and_dry_run_plan_name_the_adapter_gguf_and_trainable_parameters(workspace):
    run, export, train = workspace["run"], stage(workspace["run"], "export"), stage(workspace["run"], "train")
    card = (run / "publish" / "README.md").read_text()
    assert "tiny-hub-lora-f16.gguf" in card and export["adapter_sha256"] in card
    assert f"trainable parameters: {train['trainable_params']:,}" in card
    plan = json.loads((run / "publish" / "upload_plan.json").read_text())
    assert plan["dry_run"]
    assert {"tiny-hub-Q4_K_M.gguf", "tiny-hub-lora-f16.gguf", "README.md"} <= {f["path_in_repo"] for f in plan["files"]}


def publish_with_token(workspace, model_id: str, hub, secret: str) -> None:
    env = {**os.environ, "HF_TOKEN": secret, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.run([sys.executable, "-m", "training", "publish", model_id, *workspace["common"]],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert secret not in proc.stdout + proc.stderr


def test_publish_uploads_both_ggufs_to_a_hub_endpoint_and_pins_the_registry(workspace):
    from serving.registry import load_registry

    export, secret = stage(workspace["run"], "export"), "hf_iristestsecret0123456789"
    with hub_server(secret) as hub:
        publish_with_token(workspace, "tiny-hub", hub, secret)
    files = hub.repos["iris-test/tiny-hub"]
    assert sha256_bytes(files["tiny-hub-Q4_K_M.gguf"]) == export["sha256"]
    assert sha256_bytes(files["tiny-hub-lora-f16.gguf"]) == export["adapter_sha256"]
    assert b"tiny-hub-lora-f16.gguf" in files["README.md"] and "adapter/adapter_model.safetensors" in files
    entry = load_registry(workspace["registry"]).get("tiny-hub")
    assert entry.published and entry.source.hub.sha256 == export["sha256"]
    assert len(entry.source.hub.revision) == 40 and hub.commits == ["Iris rebuild"]


def test_a_hub_adapter_entry_is_pinned_to_its_lora_gguf(workspace):
    """An adapter entry serves the LoRA GGUF: that is the file its registry pin names after the upload."""
    from serving.registry import load_registry

    assert cli("rebuild", "tiny-hub-adapter", *workspace["common"], "--max-steps", "2", "--max-new-tokens", "4") == 0
    export, secret = stage(workspace["folder"] / "runs" / "tiny-hub-adapter", "export"), "hf_iristestsecret0123456789"
    with hub_server(secret) as hub:
        publish_with_token(workspace, "tiny-hub-adapter", hub, secret)
    files = hub.repos["iris-test/tiny-hub-adapter"]
    assert sha256_bytes(files["tiny-hub-adapter-lora-f16.gguf"]) == export["adapter_sha256"]
    assert sha256_bytes(files["tiny-hub-adapter-Q4_K_M.gguf"]) == export["sha256"]
    entry = load_registry(workspace["registry"]).get("tiny-hub-adapter")
    assert entry.published and entry.source.adapter.hub.sha256 == export["adapter_sha256"] != export["sha256"]


def test_rebuild_says_stale_first_then_installs_a_local_adapters_lora_gguf(workspace, capsys):
    from training.export.adapter import data_sha256
    from serving.registry import load_registry

    folder, old = workspace["folder"], "0" * 64
    registry = write_registry(folder, workspace["data"], old)
    now = data_sha256(load_registry(registry).get("tiny-adapter").recipe, folder)
    capsys.readouterr()
    assert cli("rebuild", "tiny-adapter", "--registry", str(registry), "--runs-dir", str(folder / "runs"),
               "--max-steps", "2", "--max-new-tokens", "4") == 0
    out = capsys.readouterr().out
    assert out.index(f"trained on data sha256 {old}, the recipe's data is now sha256 {now}: the adapter is "
                     "stale") < out.index("[prepare]")
    export = stage(folder / "runs" / "tiny-adapter", "export")
    installed = folder / "adapters" / "tiny-adapter-lora-f16.gguf"
    assert sha256(installed) == export["adapter_sha256"] and export["data_sha256"] == now
    assert f"source.adapter.local.sha256: {export['adapter_sha256']}, source.adapter.data_sha256: {now}" in out


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_check_tells_a_stale_adapter_by_its_data_sha256(workspace, capsys):
    from serving.registry import load_registry
    from training.export.adapter import data_sha256

    folder, data = workspace["folder"], workspace["data"]
    trained_on = data_sha256(load_registry(workspace["registry"]).get("tiny-adapter").recipe, folder)
    registry = write_registry(folder, data, trained_on)
    check = ["rebuild", "tiny-adapter", "--check", "--registry", str(registry), "--runs-dir", str(folder / "runs")]
    stamps = {p: p.stat().st_mtime_ns for p in (folder / "runs" / "tiny-adapter").rglob("stage.json")}
    capsys.readouterr()
    assert cli(*check) == 0
    assert f"trained on the recipe's current data (sha256 {trained_on})" in capsys.readouterr().out
    with data.open("a") as handle:  # one more dialogue: the data the recipe trains on changed
        handle.write(data.read_text().splitlines()[0] + "\n")
    now = data_sha256(load_registry(registry).get("tiny-adapter").recipe, folder)
    assert now != trained_on
    assert cli(*check) == 1
    out = capsys.readouterr().out
    assert f"trained on data sha256 {trained_on}, the recipe's data is now sha256 {now}: the adapter is stale" in out
    assert {p: p.stat().st_mtime_ns for p in (folder / "runs" / "tiny-adapter").rglob("stage.json")} == stamps
    assert len(stamps) == 6  # the rebuild before this test ran every stage; --check runs none



def test_a_stage_command_takes_the_run_folder_itself(workspace, tmp_path):
    """`--run-dir` opens any run folder (an experiment run brought back from a GPU box) with the registry recipe:
    the eval stage runs there, and a missing stage is named with that folder's path."""
    import shutil

    copy = tmp_path / "brought-back"
    shutil.copytree(workspace["run"], copy, ignore=shutil.ignore_patterns("eval"))
    common = ["--registry", str(workspace["registry"]), "--run-dir", str(copy), "--runs-dir", str(tmp_path / "other")]
    assert cli("eval", "tiny-hub", *common, "--heldout-rows", "4", "--task-rows", "2", "--max-new-tokens", "4") == 0
    assert json.loads((copy / "run.json").read_text())["stages"]["eval"]["metrics"]["heldout"]
    shutil.rmtree(copy / "train")
    with pytest.raises(SystemExit, match=rf"stage 'train' has not run for tiny-hub \(no {copy}/train/stage.json\)"):
        cli("merge", "tiny-hub", *common, "--force")
    assert not (tmp_path / "other").exists()
