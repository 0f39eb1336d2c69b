"""The model card of a rebuilt fine-tune, as a `huggingface_hub.ModelCard`.

Pure assembly from the run's records (recipe, data report, training/eval metrics, export sha256);
it reads nothing from the network and writes nothing itself.
"""

from __future__ import annotations

from typing import Any

import yaml


def _hub_datasets(recipe: dict[str, Any]) -> list[str]:
    return [d["path"] for d in recipe["datasets"] if "/" in d["path"] and not d["path"].startswith((".", "/", "tests/", "data/"))]


def _task_section(task: dict[str, Any] | None) -> list[str]:
    """The eval's support task metric per held-out set, model and context (the eval report explains it)."""
    if not task or "generated" not in task:
        return []
    lines = ["## Support task metric (held-out questions)", "",
             "| set | model | context | facts stated | answers with an invented fact | unknown order: not found | "
             "uncovered: said so |", "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for name, cells in task.items():
        for who, by_context in cells.items():
            for ctx, m in by_context.items():
                lines.append(f"| {name} | {who} | {'with' if ctx == 'context' else 'without'} | "
                             f"{m['fact_recall']:.1%} | {m['invented_answers']:.1%} | {m['unknown_not_found']:.1%} | "
                             f"{m['uncovered_said']:.1%} |")
    return lines + [""]


def _adapter_lines(export: dict[str, Any]) -> list[str]:
    """The LoRA GGUF beside the merged one: what llama.cpp applies over the base (`--lora`, a registry adapter)."""
    if not export.get("adapter_gguf"):
        return []
    return [f"- `{export['adapter_gguf'].rsplit('/', 1)[-1]}`: the LoRA adapter as a llama.cpp LoRA GGUF (rank "
            f"{export.get('adapter_rank')}), to serve over the base GGUF instead of the merged file; sha256 "
            f"`{export['adapter_sha256']}`; verification: {export.get('adapter_verification')}",
            f"- training data sha256 `{export.get('data_sha256')}` (`training.export.adapter.data_sha256`)"]


def _trainable_line(train: dict[str, Any]) -> str:
    if train.get("trainable_params") is None:
        return "- trainable parameters: not recorded (trained before they were counted)"
    return (f"- trainable parameters: {train['trainable_params']:,} ({train['trainable_percent']:.4g}% of the base's "
            f"{train['base_params']:,})")


def build_card(entry: dict[str, Any], recipe: dict[str, Any], metrics: dict[str, Any]):
    """A ModelCard with YAML metadata (license, base model, datasets) and a body with every number."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        license=entry.get("license"), base_model=recipe["base_checkpoint"], datasets=_hub_datasets(recipe) or None,
        tags=["gguf", "llama", "iris", recipe["method"], "llama.cpp"], pipeline_tag="text-generation",
    )
    export, train, heldout = metrics.get("export", {}), metrics.get("train", {}), metrics.get("eval", {}).get("heldout", {})
    body = [
        f"# {entry['display_name']}", "", entry.get("description", ""), "",
        "Rebuilt with the Iris training toolkit: `python -m training rebuild " + entry["id"] + "`.", "",
        "## Files", "",
        f"- `{export.get('gguf', '').rsplit('/', 1)[-1]}`: {export.get('quant')} GGUF, sha256 `{export.get('sha256')}`",
        f"- export verification: {export.get('verification')}",
        *_adapter_lines(export), "",
        "## Training", "",
        f"- base model: `{recipe['base_checkpoint']}`, method: {recipe['method']}, seed {recipe['seed']}",
        _trainable_line(train),
        f"- datasets: {', '.join(d['path'] for d in recipe['datasets'])}",
        f"- steps: {train.get('global_step')}, final loss {train.get('last_loss')}, "
        f"{train.get('tokens_per_s')} tokens/s, runtime {train.get('train_runtime_s')} s", "",
        "## Evaluation (held-out split, assistant tokens)", "",
        "| | loss | perplexity |", "| --- | ---: | ---: |",
        *[f"| {who} | {v.get('loss')} | {v.get('perplexity')} |" for who, v in heldout.items()], "",
        *_task_section(metrics.get("eval", {}).get("task")),
        "## Recipe", "", "```yaml", yaml.safe_dump(recipe, sort_keys=False).strip(), "```", "",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body))
