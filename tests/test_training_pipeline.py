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
                    "save_steps": 5, "activation_checkpointing": True, "lr_scheduler_type": "constant", **(sft or {})},
        },
    }


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("tiny-base"))


def rebuild(registry: Path, runs: Path, model_id: str, *extra: str) -> None:
    from training.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HF_TOKEN", raising=False)
        assert main(["rebuild", model_id, "--registry", str(registry), "--runs-dir", str(runs),
                     "--max-new-tokens", "12", *extra]) == 0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, tiny_base) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("workspace")
    entries = [
        fine_tune_entry("tiny-lora", "lora", tiny_base, {"format": "sharegpt", "path": str(FIXTURES / "finetome.jsonl"),
                                                          "test_size": 0.1, "options": {"min_score": 4.0}},
                        sft={"num_train_epochs": 2, "activation_checkpointing": False}),
        fine_tune_entry("tiny-qlora", "qlora", tiny_base, {"format": "bitext", "path": str(FIXTURES / "bitext.csv"),
                                                            "test_size": 0.1, "rows": 24, "options": {"persona_by_category": True}},
                        sft={"num_train_epochs": 2}),
        fine_tune_entry("tiny-resume", "lora", tiny_base, {"format": "exam_jsonl", "path": str(FIXTURES / "exam.jsonl"),
                                                            "test_size": 0.1}, sft={"save_steps": 3, "per_device_train_batch_size": 2}),
    ]
    return {"registry": write_registry(folder / "registry.yaml", tiny_base, entries), "runs": folder / "runs",
            "base": tiny_base, "folder": folder}


@pytest.fixture(scope="module")
def lora_run(workspace) -> Path:
    rebuild(workspace["registry"], workspace["runs"], "tiny-lora")
    return workspace["runs"] / "tiny-lora"


@pytest.fixture(scope="module")
def qlora_run(workspace) -> Path:
    rebuild(workspace["registry"], workspace["runs"], "tiny-qlora", "--max-steps", "6")
    return workspace["runs"] / "tiny-qlora"


def stage(run: Path, name: str) -> dict:
    return json.loads((run / name / "stage.json").read_text())["metrics"]


def test_lora_rebuild_records_every_stage_and_loss_falls(lora_run):
    from training.sft.trainer import read_loss_csv

    record = json.loads((lora_run / "run.json").read_text())
    assert list(record["stages"]) == ["prepare", "train", "merge", "export", "eval", "publish"]
    assert record["seed"] == 3 and record["versions"]["trl"] == "1.16.0"
    assert stage(lora_run, "prepare")["bad_rows"] == 5
    losses = [row["loss"] for row in read_loss_csv(lora_run / "train" / "loss.csv")]
    train = stage(lora_run, "train")
    assert len(losses) == train["global_step"] == 12 and not train["loaded_in_4bit"]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0, losses
    assert train["tokens_per_s"] > 0 and train["peak_cpu_rss_gib"] > 0
    assert (lora_run / "train" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    evals = read_loss_csv(lora_run / "train" / "loss.csv", "eval_loss")  # held-out loss half-way and at the end (CPU)
    assert [int(r["step"]) for r in evals] == [6, 12] and evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert all(r["cpu_rss_gib"] > 0.1 for r in evals) and train["eval_runtime_s"] > 0


def test_trainer_batches_carry_labels_only_on_assistant_tokens(lora_run, workspace):
    from tests.test_training_template import expected_assistant_positions
    from training.sft.trainer import TrainPlan, build_trainer, load_tokenizer
    from training.stages.prepare import read_jsonl

    plan = TrainPlan(base_checkpoint=str(workspace["base"]), method="lora", lora={"r": 4},
                     sft={"max_length": 256, "assistant_only_loss": True, "bf16": False}, seed=0,
                     output_dir=workspace["folder"] / "mask-check")
    rows = read_jsonl(lora_run / "prepare" / "train.jsonl")
    trainer = build_trainer(plan, rows)
    tokenizer = load_tokenizer(str(workspace["base"]))
    assert len(trainer.train_dataset) == len(rows)
    for example in trainer.train_dataset:
        labelled = {i for i, label in enumerate(example["labels"]) if label != -100}
        assert labelled == expected_assistant_positions(tokenizer, example["input_ids"])


@pytest.mark.parametrize("run_name", ["lora_run", "qlora_run"])
def test_merged_logits_equal_base_plus_adapter(run_name, request, workspace):
    import torch
    from transformers import AutoModelForCausalLM

    from training.stages.merge import load_with_adapter

    run = request.getfixturevalue(run_name)
    ids = torch.randint(300, 700, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = load_with_adapter(str(workspace["base"]), run / "train" / "adapter", "bfloat16").eval()(input_ids=ids).logits.float()
        merged = AutoModelForCausalLM.from_pretrained(run / "merge" / "model", dtype=torch.bfloat16).eval()(input_ids=ids).logits.float()
        base = AutoModelForCausalLM.from_pretrained(workspace["base"], dtype=torch.bfloat16).eval()(input_ids=ids).logits.float()
    assert (reference - base).abs().max() > 0.5  # the adapter matters ...
    assert (merged - reference).abs().max() < 0.05  # ... and merging reproduces it (bf16 rounding only)
    assert (merged.argmax(-1) == reference.argmax(-1)).float().mean() > 0.98


@pytest.mark.parametrize("run_name", ["lora_run", "qlora_run"])
def test_export_writes_a_verified_loadable_gguf(run_name, request):
    from llama_cpp import Llama

    from training.stages.run import file_sha256

    run = request.getfixturevalue(run_name)
    export = stage(run, "export")
    gguf = Path(export["gguf"])
    assert gguf.name == f"{run.name}-Q4_K_M.gguf" and file_sha256(gguf) == export["sha256"]
    sidecar = json.loads(gguf.with_name(gguf.name + ".json").read_text())
    assert sidecar["report"]["passed"] and export["verification"].startswith("tokenization ok")
    llm = Llama(model_path=str(gguf), n_ctx=256, verbose=False)
    out = llm.create_chat_completion([{"role": "user", "content": "hello"}], max_tokens=4, temperature=0)
    assert out["usage"]["completion_tokens"] >= 1


def test_eval_report_compares_base_and_finetune(lora_run):
    report = json.loads((lora_run / "eval" / "report.json").read_text())
    assert report["domain"] == "general" and len(report["items"]) == 4
    assert report["heldout"]["finetune"]["loss"] < report["heldout"]["base"]["loss"]
    for item in report["items"]:
        assert isinstance(item["base"]["text"], str) and isinstance(item["finetune"]["text"], str)
        assert 1 <= item["finetune"]["tokens"] <= 12
    markdown = (lora_run / "eval" / "report.md").read_text()
    assert "| base | " in markdown and "| fine-tune | " in markdown
    assert markdown.count("\n| ") >= 2 + 1 + 4  # held-out rows, prompt header, one row per prompt


def test_qlora_rebuild_trains_a_4bit_base_on_bitext(qlora_run):
    train = stage(qlora_run, "train")
    assert train["loaded_in_4bit"] and train["global_step"] == 6
    assert train["last_loss"] < train["first_loss"]
    assert stage(qlora_run, "eval")["domain"] == "support"
    first = json.loads((qlora_run / "prepare" / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][0]["role"] == "system"


def test_dry_run_publish_lists_uploads_and_writes_the_card(lora_run, workspace):
    from huggingface_hub import ModelCard

    plan = json.loads((lora_run / "publish" / "upload_plan.json").read_text())
    assert plan["dry_run"] and plan["repo"] == "iris-test/tiny-lora"
    paths = [f["path_in_repo"] for f in plan["files"]]
    assert {"README.md", "tiny-lora-Q4_K_M.gguf", "tiny-lora-lora-f16.gguf", "eval/report.md",
            "adapter/adapter_model.safetensors"} <= set(paths)
    card = ModelCard.load(lora_run / "publish" / "README.md")
    assert card.data.license == "apache-2.0" and card.data.base_model == str(workspace["base"])
    assert stage(lora_run, "export")["sha256"] in card.text and "| finetune |" in card.text


def test_second_rebuild_skips_every_stage(lora_run, workspace, capsys):
    capsys.readouterr()
    rebuild(workspace["registry"], workspace["runs"], "tiny-lora")
    out = capsys.readouterr().out
    assert out.count("up to date") == 6, out


@pytest.mark.parametrize("source, model_id", [("repo", "llama-3.2-1b-support"), ("test", "tiny-qlora")])
def test_registry_update_is_atomic_and_keeps_the_file(source, model_id, qlora_run, workspace, tmp_path):
    """Flow-style hub sources (the repo's registry) and block-style ones (the test registry)."""
    import difflib

    from serving.registry import load_registry
    from training.stages.publish import update_registry_entry

    copy = tmp_path / "registry.yaml"
    original = (REPO / "model_registry.yaml" if source == "repo" else workspace["registry"]).read_text()
    copy.write_text(original)
    sha, revision = stage(qlora_run, "export")["sha256"], "0123456789abcdef0123456789abcdef01234567"
    update_registry_entry(copy, model_id, revision=revision, sha256=sha)
    registry = load_registry(copy)
    entry = registry.get(model_id)
    assert entry.published and entry.source.file.sha256 == sha and entry.source.file.revision == revision  # the model's file or its LoRA's
    before, after = load_registry(REPO / "model_registry.yaml" if source == "repo" else workspace["registry"]), registry
    assert all(before.get(i) == after.get(i) for i in before.ids() if i != model_id)
    diff = [d for d in difflib.ndiff(original.splitlines(), copy.read_text().splitlines()) if d[:1] in "+-"]
    assert all(("hub:" in d or "published:" in d) for d in diff if d.startswith("-"))  # only those lines change
    assert all(any(k in d for k in ("hub:", "published: true", "revision:", "sha256:")) for d in diff if d.startswith("+"))
    assert copy.read_text().splitlines()[0] == original.splitlines()[0]  # comments kept
    assert [p.name for p in tmp_path.iterdir()] == ["registry.yaml"]  # no temporary file left behind
    with pytest.raises(KeyError, match="no entry '- id: nope'"):
        update_registry_entry(copy, "nope", revision=revision, sha256=sha)


def test_publish_with_a_token_never_prints_or_stores_it(lora_run, workspace):
    secret = "hf_iristestsecret0123456789"
    env = {**os.environ, "HF_TOKEN": secret, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_DISABLE_TELEMETRY": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "training", "publish", "tiny-lora", "--registry", str(workspace["registry"]),
         "--runs-dir", str(workspace["runs"])], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0  # nothing listens on the loopback port
    assert secret not in proc.stdout + proc.stderr
    for path in lora_run.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert secret.encode() not in path.read_bytes(), path
    from serving.registry import load_registry

    assert not load_registry(workspace["registry"]).get("tiny-lora").published  # failed upload: registry untouched


def test_resume_after_kill_reaches_the_same_step_with_optimizer_state(workspace):
    import torch

    from training.stages.prepare import prepare
    from training.stages.run import Run
    from serving.registry import load_registry

    registry = load_registry(workspace["registry"])
    run_dir = workspace["runs"] / "tiny-resume"
    run_dir.mkdir(parents=True, exist_ok=True)
    prepare(Run(registry=registry, entry=registry.get("tiny-resume"), dir=run_dir))
    command = [sys.executable, "-m", "training", "train", "tiny-resume", "--registry", str(workspace["registry"]),
               "--runs-dir", str(workspace["runs"]), "--max-steps", "12"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    checkpoints = run_dir / "train" / "checkpoints"
    deadline = time.monotonic() + 120
    while not list(checkpoints.glob("checkpoint-*/trainer_state.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(checkpoints.glob("checkpoint-*")) and not (run_dir / "train" / "stage.json").exists()
    killed_at = max(int(p.name.split("-")[1]) for p in checkpoints.glob("checkpoint-*"))
    assert killed_at < 12

    resumed = subprocess.run(command + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    train = stage(run_dir, "train")
    assert train["global_step"] == 12 and train["resumed_from"].startswith("checkpoint-")
    optimizer = torch.load(checkpoints / "checkpoint-12" / "optimizer.pt", weights_only=False)
    steps = {int(s["step"]) for s in optimizer["state"].values()}
    assert steps == {12}  # a fresh optimizer after resuming would count only the resumed steps
    from training.sft.trainer import read_loss_csv

    logged = [int(row["step"]) for row in read_loss_csv(run_dir / "train" / "loss.csv")]
    assert logged == list(range(1, 13))
    evals = [int(row["step"]) for row in read_loss_csv(run_dir / "train" / "loss.csv", "eval_loss")]
    assert evals == [6, 12]  # half-way and at the end (CPU default), once each although the run was resumed


def test_packed_padding_free_batches_keep_sequences_apart(lora_run, workspace):
    """With packing (BFD -> padding-free) and SDPA, each packed conversation gets the same logits
    as when it runs alone: no attention across the boundaries of packed sequences."""
    import torch

    from training.sft.trainer import TrainPlan, build_trainer
    from training.stages.prepare import read_jsonl

    plan = TrainPlan(base_checkpoint=str(workspace["base"]), method="lora", lora={"r": 4},
                     sft={"max_length": 512, "packing": True, "assistant_only_loss": True, "bf16": False,
                          "per_device_train_batch_size": 2}, seed=0, output_dir=workspace["folder"] / "pack-check")
    trainer = build_trainer(plan, read_jsonl(lora_run / "prepare" / "train.jsonl"))
    assert trainer.padding_free
    batch = next(iter(trainer.get_train_dataloader()))
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    model = trainer.model.eval()
    positions = batch["position_ids"][0]
    starts = [*(positions == 0).nonzero().flatten().tolist(), len(positions)]
    assert len(starts) > 3  # several conversations in one row
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        for a, b in zip(starts[:3], starts[1:4]):
            alone = model(input_ids=batch["input_ids"][:, a:b]).logits[0]
            assert torch.allclose(packed[a:b], alone, atol=1e-4), (a, b)


def test_stage_commands_fail_with_one_line_messages(workspace, tmp_path):
    from training.cli import main

    common = ["--registry", str(workspace["registry"]), "--runs-dir", str(tmp_path)]
    with pytest.raises(SystemExit, match=r"^prepare: error: .*unknown model id 'nope'"):
        main(["prepare", "nope", *common])
    with pytest.raises(SystemExit, match=r"^prepare: error: .*finetome\.jsonl: row 11: wrong role"):
        main(["prepare", "tiny-lora", "--strict", *common])
    with pytest.raises(SystemExit, match=r"^merge: error: stage 'train' has not run for tiny-lora .* `python -m training train tiny-lora`"):
        main(["merge", "tiny-lora", *common])
    with pytest.raises(SystemExit, match=r"^rebuild: error: tiny-base has no recipe"):
        main(["rebuild", "tiny-base", *common])


def test_the_eval_curve_reads_a_tenth_of_the_training_rows_within_its_bounds():
    """The eval curve's passes stay a small share of a run: 8 rows for CI's 48-row CPU recipe (32 grounded rows cost
    two minutes a pass on 2 cores), 32 for a 3,000-row GPU run."""
    from training.stages.train import EVAL_CURVE_ROWS, eval_curve_rows

    assert EVAL_CURVE_ROWS == (8, 32)
    assert [eval_curve_rows(n) for n in (0, 48, 80, 200, 2595)] == [8, 8, 8, 20, 32]
