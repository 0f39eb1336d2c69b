"""`python -m training experiment`: a real two-run grid (`lora.r=2,4`) on the offline demo base on CPU,
its table, plot and per-step eval/memory rows, resuming by skipping finished runs, and clear errors
for keys the recipe cannot take (checked before anything trains)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEMO_BASE = REPO / "models" / "demo" / "demo-base-hf"
pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory) -> Path:
    if not (DEMO_BASE / "config.json").exists():
        pytest.fail(f"{DEMO_BASE} missing: run `python -m training build-demo`")
    recipe = {
        "base_checkpoint": str(DEMO_BASE), "method": "lora", "seed": 1,
        "lora": {"r": 2, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": "all-linear"},
        "datasets": [{"format": "chat_jsonl", "path": str(REPO / "data/support/train.jsonl"),
                      "test_path": str(REPO / "data/support/test.jsonl"), "rows": 24}],
        "sft": {"max_length": 1024, "learning_rate": 2.0e-3, "per_device_train_batch_size": 4,
                "assistant_only_loss": True, "logging_steps": 1, "bf16": False},
    }
    data = {"hub_owner": "iris-test", "models": [
        {"id": "demo-base", "display_name": "Demo base", "kind": "base",
         "source": {"local": {"path": "demo.gguf"}}, "context_length": 1024},
        {"id": "grid-support", "display_name": "Grid", "kind": "fine-tuned", "base_model": "demo-base",
         "source": {"local": {"path": "grid.gguf"}}, "context_length": 1024, "recipe": recipe},
    ]}
    path = tmp_path_factory.mktemp("experiment") / "registry.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def experiment(registry_file: Path, *args: str) -> int:
    from training.cli import main

    return main(["experiment", "grid-support", "--registry", str(registry_file), "--max-steps", "3",
                 "--heldout-rows", "12", "--max-new-tokens", "8", *args])


@pytest.fixture(scope="module")
def grid(registry_file) -> Path:
    assert experiment(registry_file, "--grid", "lora.r=2,4") == 0
    return registry_file.parent / "runs" / "experiments" / "grid-support"


def test_both_runs_trained_and_the_table_has_their_numbers(grid):
    with (grid / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["run"] for r in rows] == ["lora.r-2", "lora.r-4"] and [r["lora.r"] for r in rows] == ["2", "4"]
    for row in rows:
        for column in ("heldout_loss", "fact_recall", "tokens_per_s", "peak_memory_gib", "wall_s", "adapter_mb"):
            assert float(row[column]) >= 0, (column, row)
        assert float(row["heldout_loss"]) > 0 and int(row["steps"]) == 3
    assert float(rows[1]["adapter_mb"]) > 1.8 * float(rows[0]["adapter_mb"])  # rank 4 stores twice rank 2
    assert int(rows[1]["trainable_params"]) == 2 * int(rows[0]["trainable_params"]) > 0  # r x (n_in + n_out) each
    assert float(rows[1]["trainable_percent"]) == pytest.approx(2 * float(rows[0]["trainable_percent"]), rel=1e-3)
    markdown = (grid / "results.md").read_text()
    assert markdown.startswith("| run | lora.r | heldout_loss |") and markdown.count("\n| lora.r-") == 2
    assert (grid / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    quick = json.loads((grid / "lora.r-4" / "quick_eval.json").read_text())
    assert quick["task"]["metric"]["finetune"]["answers"] >= 1  # held-out questions with facts were answered


def test_each_logged_step_has_memory_and_the_eval_curve_is_recorded(grid):
    from training.sft.trainer import read_loss_csv

    csv_path = grid / "lora.r-2" / "train" / "loss.csv"
    train, evals = read_loss_csv(csv_path, "loss"), read_loss_csv(csv_path, "eval_loss")
    assert [r["step"] for r in train] == [1, 2, 3] and len(evals) >= 2
    assert all(r["cpu_rss_gib"] > 0.1 for r in train + evals)
    assert (grid / "lora.r-2" / "train" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_a_second_invocation_skips_finished_runs(grid, registry_file, capsys):
    stamps = {p: p.stat().st_mtime_ns for p in grid.glob("*/result.json")}
    capsys.readouterr()
    assert experiment(registry_file, "--grid", "lora.r=2,4") == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2
    assert {p: p.stat().st_mtime_ns for p in grid.glob("*/result.json")} == stamps and len(stamps) == 2


def test_a_transformers_result_does_not_finish_a_llama_cpp_run(grid, registry_file):
    """The GPU box's quick eval leaves a result.json; `--export` on a CPU box must still export and evaluate."""
    from dataclasses import replace

    from training.stages.experiment import Options, finished

    quick = Options(registry=str(registry_file), model_id="grid-support", folder=grid)
    assert finished(quick, {"lora.r": 2}) and not finished(replace(quick, export=True), {"lora.r": 2})
    assert json.loads((grid / "lora.r-2" / "result.json").read_text())["eval"] == "transformers"


def test_task_rows_need_the_llama_cpp_eval(registry_file, tmp_path):
    with pytest.raises(SystemExit, match=r"^experiment: error: --task-rows needs --export"):
        experiment(registry_file, "--grid", "lora.r=2", "--task-rows", "4", "--runs-dir", str(tmp_path))


@pytest.mark.parametrize(("grid_arg", "message"), [
    ("lora.rr=2,4", r"lora.rr=2: recipe.lora: 'rr' is not a peft.LoraConfig field; did you mean 'r'\?"),
    ("sft.learning_rat=1e-4", r"'learning_rat' is not a trl.SFTConfig field; did you mean 'learning_rate'\?"),
    ("methd=lora", r"methd=lora: methd: Extra inputs are not permitted"),
    ("method=lora,full", r"method=full: method: .*'full' is not implemented"),
    ("datasets[2].rows=10", r"datasets\[2\].rows.*item \[2\] does not exist \(the recipe has 1\)"),
    ("lora.r", r"expected KEY=VALUE"),
])
def test_a_bad_override_is_refused_before_training(registry_file, grid_arg, message, tmp_path):
    with pytest.raises(SystemExit, match=rf"^experiment: error: .*{message}"):
        experiment(registry_file, "--grid", grid_arg, "--runs-dir", str(tmp_path))
    assert not (tmp_path / "experiments" / "grid-support").exists() or not any(
        (tmp_path / "experiments" / "grid-support").iterdir())


def test_one_at_a_time_varies_one_key_around_the_recipe():
    from serving.registry import load_registry
    from training.stages.experiment import parse_grid, plan_runs, run_name

    recipe = load_registry(REPO / "model_registry.yaml").get("smollm2-135m-support-cpu").recipe
    grid = parse_grid(["lora.r=16,64", "datasets[0].rows=1000,3000", "method=lora,qlora",
                       "sft.learning_rate=1e-3,2e-4,5e-5"])
    runs = plan_runs(grid, recipe, one_at_a_time=True)
    assert runs == [{}, {"lora.r": 16}, {"datasets[0].rows": 1000}, {"datasets[0].rows": 3000},
                    {"method": "qlora"}, {"sft.learning_rate": 2e-4}, {"sft.learning_rate": 5e-5}]
    assert [run_name(r) for r in runs[:3]] == ["recipe", "lora.r-16", "datasets0.rows-1000"]
    assert run_name({"sft.learning_rate": 2e-4, "method": "qlora"}) == "sft.learning_rate-0.0002_method-qlora"
    assert len(plan_runs(grid, recipe, one_at_a_time=False)) == 2 * 2 * 2 * 3
