"""The run folder of one model: stage folders, content-hash skipping and `run.json`.

`runs/<model-id>/` holds one folder per stage. A stage finishes by writing `<stage>/stage.json`
with a fingerprint: the sha256 of its inputs (the recipe fields it uses, input file hashes, the
upstream stages' fingerprints, run options). Re-running a stage with the same fingerprint is a
no-op, so `rebuild` resumes where it stopped and any recipe change re-runs exactly the stages it
affects. `run.json` collects versions, seeds, timings and metrics of every stage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.registry import ModelEntry, Recipe, Registry, load_registry
from serving.files import sha256_of, write_text_atomic

STAGES = ("prepare", "train", "merge", "export", "eval", "publish")
PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate", "gguf", "huggingface_hub")


class StageError(RuntimeError):
    """A stage that cannot run; the message says what is missing and which command makes it."""


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments every stage command shares."""
    parser.add_argument("model_id", help="registry id of the model to rebuild")
    parser.add_argument("--registry", default=None, help="registry file (default: model_registry.yaml or $IRIS_REGISTRY)")
    parser.add_argument("--runs-dir", default=None, help="parent of the run folder (default: runs/ next to the registry)")
    parser.add_argument("--run-dir", default=None,
                        help="the run folder itself (default: RUNS_DIR/MODEL_ID), e.g. an experiment run "
                             "runs/experiments/MODEL_ID/RUN to finish on another machine")
    parser.add_argument("--force", action="store_true", help="re-run even when the stage output is up to date")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON atomically, so readers never see half a file."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


file_sha256 = sha256_of  # one implementation for the whole repo (serving/files.py)


def fingerprint(inputs: dict[str, Any]) -> str:
    """sha256 of a JSON-able description of a stage's inputs."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def package_versions(names: Iterable[str] = PACKAGES, missing: str | None = "not installed") -> dict[str, str | None]:
    """Python's version and each installed distribution's (`missing` for one that is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = missing
    return out


@dataclass(frozen=True)
class Run:
    """One model's run folder and the registry entry it rebuilds."""

    registry: Registry
    entry: ModelEntry
    dir: Path
    force: bool = False
    runs: Path | None = None
    """Parent of the run folders (default: runs/ next to the registry); a `run:<model-id>` base is found there."""

    @property
    def recipe(self) -> Recipe:
        assert self.entry.recipe is not None
        return self.entry.recipe

    @property
    def root(self) -> Path:
        """Folder that relative recipe paths are resolved against (the registry's folder)."""
        return self.registry.root

    def stage_dir(self, stage: str) -> Path:
        path = self.dir / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def stage_record(self, stage: str) -> dict[str, Any] | None:
        path = self.dir / stage / "stage.json"
        return json.loads(path.read_text()) if path.exists() else None

    def upstream(self, stage: str) -> dict[str, Any]:
        """The finished record of an earlier stage, or a StageError naming the command to run."""
        record = self.stage_record(stage)
        if record is None:
            raise StageError(
                f"stage {stage!r} has not run for {self.entry.id} (no {self.dir / stage / 'stage.json'}); "
                f"run `python -m training {stage} {self.entry.id}` first"
            )
        return record

    def stage_run(self) -> Run | None:
        """The run of the earlier training stage a `run:<model-id>` base names, else None."""
        stage = self.recipe.run_base
        if stage is None:
            return None
        runs = self.runs or self.root / "runs"
        return Run(registry=self.registry, entry=self.registry.get(stage), dir=runs / stage, runs=self.runs)

    def base_checkpoint(self) -> str:
        """The recipe's base checkpoint as a local path when it is one (an earlier stage's merged model for
        `run:<model-id>`), else the Hub id."""
        stage = self.stage_run()
        if stage is not None:
            merged = stage.dir / "merge" / "model"
            if not (merged / "config.json").exists():
                raise StageError(f"{self.entry.id} starts from {self.recipe.base_checkpoint}, which has no merged "
                                 f"model ({merged}); run `python -m training rebuild {self.entry.id}` (it trains "
                                 f"{stage.entry.id} first) or `python -m training rebuild {stage.entry.id}`")
            return str(merged)
        local = self.root / self.recipe.base_checkpoint
        return str(local) if local.exists() else self.recipe.base_checkpoint

    def base_identity(self) -> Any:
        """What the base is, for stage fingerprints: the checkpoint's name, and for `run:<model-id>` also the
        fingerprint of that run's merge stage, so retraining the first stage re-runs the second."""
        stage = self.stage_run()
        if stage is None:
            return self.recipe.base_checkpoint
        return {"run": stage.entry.id, "merge": (stage.stage_record("merge") or {}).get("fingerprint")}

    def ensure_base(self) -> None:
        """Import the base entry's GGUF (package or local source) into `base_checkpoint` when that folder is
        missing: any GGUF the registry serves can be a training base (`python -m training import-gguf`).
        A `run:<model-id>` base is an earlier stage's run, made by `rebuild` (`training.stages.rebuild`)."""
        local = self.root / self.recipe.base_checkpoint
        base = self.registry.base_of(self.entry.id)
        if self.recipe.run_base or local.exists() or base is None or base.source.hub is not None:
            return
        from serving.resolve import Resolver
        from training.export.gguf_import import import_gguf

        gguf = Resolver(self.registry).fetch(base)  # sha256-checked
        print(f"[base] importing {base.id} from {gguf} into {local}", flush=True)
        import_gguf(gguf, local)


def open_run(args: argparse.Namespace) -> Run:
    """The Run for a stage command's arguments; refuses entries without a trainable recipe."""
    registry = load_registry(args.registry)
    entry = registry.get(args.model_id)
    if entry.recipe is None:
        raise StageError(f"{entry.id} has no recipe in {registry.path.name}; only fine-tunes can be rebuilt")
    if entry.recipe.method == "scratch":
        raise StageError(f"{entry.id} is trained from scratch; build it with `python -m training build-demo`")
    runs = Path(args.runs_dir) if args.runs_dir else registry.root / "runs"
    run_dir = Path(args.run_dir) if getattr(args, "run_dir", None) else runs / entry.id
    run_dir.mkdir(parents=True, exist_ok=True)
    return Run(registry=registry, entry=entry, dir=run_dir, force=bool(getattr(args, "force", False)),
               runs=runs)


def is_main_process() -> bool:
    """False on the non-zero ranks of a multi-GPU (`accelerate launch`) run, which write nothing."""
    return os.environ.get("RANK", "0") == "0"


def run_stage(run: Run, stage: str, inputs: dict[str, Any], body: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run `body(stage_dir) -> metrics` unless the stage already finished with the same inputs.

    Returns the stage record (fingerprint, metrics, timings) and records it in run.json.
    """
    key = fingerprint({"stage": stage, **inputs})
    previous = run.stage_record(stage)
    if previous and previous.get("fingerprint") == key and not run.force:
        print(f"[{stage}] up to date ({key[:12]}), skipped")
        return previous
    out_dir = run.stage_dir(stage)
    (out_dir / "stage.json").unlink(missing_ok=True)
    print(f"[{stage}] running -> {out_dir}")
    started = time.perf_counter()
    metrics = body(out_dir)
    record = {
        "stage": stage, "fingerprint": key, "seconds": round(time.perf_counter() - started, 2),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "metrics": metrics,
    }
    if is_main_process():
        write_json_atomic(out_dir / "stage.json", record)
        _update_run_json(run, stage, record)
    return record


def _update_run_json(run: Run, stage: str, record: dict[str, Any]) -> None:
    path = run.dir / "run.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update({"model_id": run.entry.id, "seed": run.recipe.seed, "recipe": run.recipe.model_dump(mode="json"),
                 "versions": package_versions()})
    data.setdefault("stages", {})[stage] = record
    write_json_atomic(path, data)


@contextmanager
def stage_errors(prefix: str) -> Iterator[None]:
    """Turn expected failures into a one-line message and exit status 1 (tracebacks are for bugs: a bare
    KeyError is one, so only the registry's `UnknownModelId` is caught)."""
    from serving.registry import RegistryError, UnknownModelId
    from training.data.common import DataFormatError
    from training.export import ExportError
    from training.sft.config import RecipeKeyError

    try:
        yield
    except (StageError, RegistryError, UnknownModelId, DataFormatError, RecipeKeyError, ExportError, FileNotFoundError) as err:
        raise SystemExit(f"{prefix}: error: {err}") from None
