"""Stage 6, `python -m training publish MODEL_ID`: model card, Hub upload, registry update.

With $HF_TOKEN set, uploads the GGUF, README.md (model card), the adapter (the LoRA GGUF beside the
merged one, and the peft folder under adapter/) and the eval report to the entry's Hub repo ($HF_ENDPOINT
when set), then records the commit (`revision`), the GGUF's sha256 and `published: true` in the registry
with an atomic write. A local entry gets its file installed where the registry serves it from: the merged
GGUF, or the LoRA GGUF for an adapter entry (`source.adapter.local`). Without a token it is a dry run that
lists what would be uploaded. The token is read from the environment only and never printed,
logged or written anywhere.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from serving.files import atomic_path, write_text_atomic
from serving.registry import HubSource, LocalSource, UnknownModelId, parse_registry
from training.stages.run import Run, StageError, add_run_arguments, open_run, run_stage, stage_errors, write_json_atomic

TOKEN_ENV = "HF_TOKEN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--no-adapter", action="store_true", help="do not upload the LoRA adapter")


def upload_plan(run: Run, out: Path, with_adapter: bool = True) -> list[dict[str, Any]]:
    """(local file, path in repo, bytes) for everything the upload sends; writes the card first."""
    from training.card import build_card

    metrics = {s: (run.stage_record(s) or {}).get("metrics", {}) for s in ("prepare", "train", "export", "eval")}
    card = build_card(run.entry.model_dump(mode="json"), run.recipe.model_dump(mode="json"), metrics)
    card.save(out / "README.md")
    files = [(out / "README.md", "README.md"), (Path(metrics["export"]["gguf"]), Path(metrics["export"]["gguf"]).name)]
    files += [(run.dir / "eval" / name, f"eval/{name}") for name in ("report.md", "report.json")]
    files += [(run.dir / "train" / "loss.png", "training/loss.png")]
    if metrics["export"].get("adapter_gguf") and (with_adapter or run.entry.source.adapter):  # an adapter serves it
        files += [(Path(metrics["export"]["adapter_gguf"]), Path(metrics["export"]["adapter_gguf"]).name)]
    if with_adapter:
        adapter = run.dir / "train" / "adapter"
        files += [(p, f"adapter/{p.relative_to(adapter)}") for p in sorted(adapter.rglob("*")) if p.is_file()]
    return [{"local": str(p), "path_in_repo": r, "bytes": p.stat().st_size} for p, r in files if p.exists()]


def publish(run: Run, with_adapter: bool = True) -> dict[str, Any]:
    """Run the stage (or skip it when up to date); returns its record."""
    hub, exported = run.entry.source.file, run.upstream("export")["metrics"]
    if isinstance(hub, LocalSource):  # built here, served from the entry's own path
        inputs = {"eval": run.upstream("eval")["fingerprint"], "export": _served_file(run)["sha256"]}
        return run_stage(run, "publish", inputs, lambda out: _install_local(run, out))
    if not isinstance(hub, HubSource):
        raise StageError(f"{run.entry.id}: only a Hub or a local file (a model's or an adapter's) can be published")
    dry_run = not os.environ.get(TOKEN_ENV)
    inputs = {"eval": run.upstream("eval")["fingerprint"], "export": exported["sha256"],
              "adapter_gguf": exported.get("adapter_sha256"), "repo": hub.repo, "dry_run": dry_run,
              "adapter": with_adapter}
    return run_stage(run, "publish", inputs, lambda out: _publish(run, out, hub.repo, dry_run, with_adapter))


def _served_file(run: Run) -> dict[str, str]:
    """The exported file the entry serves, and its sha256: the LoRA GGUF for an adapter entry, else the merged."""
    exported = run.upstream("export")["metrics"]
    key = "adapter_" if run.entry.source.adapter else ""
    if not exported.get(f"{key}gguf"):
        raise StageError(f"{run.entry.id}: the export stage wrote no adapter GGUF; run `python -m training export "
                         f"{run.entry.id} --force`")
    return {"gguf": exported[f"{key}gguf"], "sha256": exported[f"{key}sha256"]}


def _install_local(run: Run, out: Path) -> dict[str, Any]:
    """Put the exported GGUF where the local entry is served from (atomically), with its model card."""
    upload_plan(run, out, with_adapter=False)  # writes the card
    served = _served_file(run)
    target = run.registry.local_path(run.entry)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as staging:
        _link_or_copy(Path(served["gguf"]), staging)
    shutil.copyfile(out / "README.md", target.with_suffix(".md"))
    print(f"[publish] {run.entry.id}: installed {target} (sha256 {served['sha256']}); the app serves it now")
    if run.entry.source.adapter:
        data = run.upstream("export")["metrics"].get("data_sha256")
        print(f"[publish] {run.entry.id}: pin it in the registry: source.adapter.local.sha256: {served['sha256']}, "
              f"source.adapter.data_sha256: {data}")
    return {"installed": str(target), **served}


def _publish(run: Run, out: Path, repo: str, dry_run: bool, with_adapter: bool) -> dict[str, Any]:
    plan = upload_plan(run, out, with_adapter)
    write_json_atomic(out / "upload_plan.json", {"repo": repo, "dry_run": dry_run, "files": plan})
    sha256 = _served_file(run)["sha256"]  # the pin is the served file's: an adapter entry serves the LoRA GGUF
    if dry_run:
        print(f"[publish] dry run (no ${TOKEN_ENV}): would upload to {repo}:")
        for item in plan:
            print(f"  {item['path_in_repo']:<40} {item['bytes']:>12,d} bytes  <- {item['local']}")
        hub = "source.adapter.hub" if run.entry.source.adapter else "source.hub"
        print(f"  then set {run.entry.id}: {hub}.revision=<commit>, {hub}.sha256={sha256}, published: true")
        return {"dry_run": True, "repo": repo, "files": [i["path_in_repo"] for i in plan]}
    revision = _upload(repo, plan, out / "staging")
    update_registry_entry(run.registry.path, run.entry.id, revision=revision, sha256=sha256)
    print(f"[publish] uploaded to {repo} at {revision}; registry entry {run.entry.id} updated")
    return {"dry_run": False, "repo": repo, "revision": revision, "sha256": sha256,
            "files": [i["path_in_repo"] for i in plan]}


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # no second copy of a multi-GB GGUF
    except OSError:
        shutil.copy2(source, target)


def _upload(repo: str, plan: list[dict[str, Any]], staging: Path) -> str:
    from huggingface_hub import HfApi

    shutil.rmtree(staging, ignore_errors=True)
    for item in plan:
        target = staging / item["path_in_repo"]
        target.parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(Path(item["local"]), target)
    api = HfApi(token=os.environ[TOKEN_ENV])
    api.create_repo(repo, repo_type="model", exist_ok=True)
    commit = api.upload_folder(repo_id=repo, folder_path=str(staging), commit_message="Iris rebuild")
    shutil.rmtree(staging, ignore_errors=True)
    return commit.oid


# ---------------------------------------------------------------- registry update

_ENTRY_START = re.compile(r"^(\s*)- id:\s*(\S+)\s*$")


def _entry_lines(lines: list[str], model_id: str) -> tuple[int, int]:
    starts = [(i, m) for i, line in enumerate(lines) if (m := _ENTRY_START.match(line))]
    for k, (i, m) in enumerate(starts):
        if m.group(2).strip("'\"") == model_id:
            end = starts[k + 1][0] if k + 1 < len(starts) else len(lines)
            return i, end
    raise UnknownModelId(f"registry has no entry '- id: {model_id}'")


def _set_flow_hub(line: str, revision: str, sha256: str) -> str:
    indent, _, flow = line.partition("hub:")
    hub = yaml.safe_load(flow)
    hub.update(revision=revision, sha256=sha256)
    return f"{indent}hub: {yaml.safe_dump(hub, default_flow_style=True, width=10_000, sort_keys=False).strip()}"


def _set_block_hub(block: list[str], at: int, revision: str, sha256: str) -> list[str]:
    """Set revision/sha256 among the indented lines under a block-style `hub:` line."""
    child = re.match(r"^(\s*)", block[at + 1]).group(1) if at + 1 < len(block) else ""
    end = at + 1
    while end < len(block) and block[end].startswith(child) and len(child) > len(block[at]) - len(block[at].lstrip()):
        end += 1
    values = {"revision": revision, "sha256": sha256}
    children = [line for line in block[at + 1:end] if line.strip().split(":")[0] not in values]
    children += [f"{child}{key}: {value}" for key, value in values.items()]
    return block[:at + 1] + children + block[end:]


def _update_block(block: list[str], revision: str, sha256: str) -> list[str] | None:
    pub_at = [i for i, line in enumerate(block) if re.match(r"^\s+published:\s*\S+\s*$", line)]
    flow_at = [i for i, line in enumerate(block) if re.match(r"^\s+hub:\s*\{.*\}\s*$", line)]
    nested_at = [i for i, line in enumerate(block) if re.match(r"^\s+hub:\s*$", line)]
    if len(pub_at) != 1 or len(flow_at) + len(nested_at) != 1:
        return None
    block = list(block)
    block[pub_at[0]] = re.sub(r"published:\s*\S+", "published: true", block[pub_at[0]])
    if flow_at:
        block[flow_at[0]] = _set_flow_hub(block[flow_at[0]], revision, sha256)
        return block
    return _set_block_hub(block, nested_at[0], revision, sha256)


def update_registry_entry(path: Path, model_id: str, revision: str, sha256: str) -> None:
    """Set `source.hub.revision`, `source.hub.sha256` and `published: true` of one entry, keeping every
    comment and the rest of the file as written; validated, then replaced atomically."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    start, end = _entry_lines(lines, model_id)
    block = _update_block(lines[start:end], revision, sha256)
    if block is None:
        raise StageError(f"{path}: entry {model_id!r} needs one `published:` line and one `hub:` mapping to update")
    new_text = "\n".join(lines[:start] + block + lines[end:])
    parse_registry(yaml.safe_load(new_text), Path(path))  # refuse to write a registry the app cannot load
    write_text_atomic(Path(path), new_text)


def main(args: argparse.Namespace) -> int:
    with stage_errors("publish"):
        publish(open_run(args), with_adapter=not args.no_adapter)
    return 0
