"""`python -m training export-adapter RUN_OR_ADAPTER_DIR OUT.gguf`: a peft LoRA adapter as a llama.cpp LoRA GGUF.

A peft adapter (adapter_config.json + adapter_model.safetensors, as `training/stages/train.py` saves it
under runs/<id>/train/adapter/) is written with the `gguf` writer in the layout llama.cpp's
`llama_adapter_lora_init` reads (src/llama-adapter.cpp):
- `general.type = "adapter"`, `general.architecture = "llama"`, `adapter.type = "lora"`, `adapter.lora.alpha`;
- per adapted base tensor `W` (named as the model exporter names it, `convert.gguf_tensor_name`) a pair
  `W.lora_a` with ne = (n_in, r) and `W.lora_b` with ne = (r, n_out), i.e. peft's `lora_A.weight` (r x n_in)
  and `lora_B.weight` (n_out x r) as they are: "model_tensor->ne[0] != w.a->ne[0] || model_tensor->ne[1] !=
  w.b->ne[1]" is llama.cpp's shape check, "w.a->ne[1] != w.b->ne[0]" its rank check;
- q/k: the model exporter reorders W's output rows (`permute_for_gguf`); delta W = B A, so B's rows get the
  same reorder and A stays.
llama.cpp scales each pair by alpha / rank with rank = `b->ne[0]` (llama-adapter.h `get_scale`), which is
peft's `lora_alpha / r` also under `rank_pattern`; rsLoRA, `alpha_pattern`, DoRA, biases, embeddings and
`modules_to_save` scale or add differently and are refused, not approximated.
The base's config.json is read to check every pair's shape first: llama.cpp would refuse a wrong base only
at load time. `--verify` compares llama.cpp base + adapter with the merged model in transformers.
`data_sha256` names the data a recipe trains on, so a registry adapter entry that records it
(`source.adapter.data_sha256`) can be told stale (`stale_adapter`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from serving.files import atomic_path, sha256_of
from serving.registry import ModelEntry, Recipe
from training.export.convert import (
    ExportError, GeneralInfo, LlamaSpec, convert_to_gguf, gguf_tensor_name, permute_for_gguf, read_llama_spec,
)

ADAPTER_TYPES = {"F16": np.float16, "F32": np.float32}
_LORA_KEY = re.compile(r"^base_model\.model\.(.+)\.lora_([AB])\.weight$")
# peft settings that change what B A means; each must be at its "plain LoRA" value
_PLAIN_LORA = {"use_rslora": False, "use_dora": False, "bias": "none", "alpha_pattern": {}, "modules_to_save": None}
GREEDY_TOKENS = 8  # new tokens per prompt in the greedy comparison


@dataclass(frozen=True)
class LoraPair:
    """One adapted base tensor, in GGUF terms."""

    name: str
    """GGUF name of the base tensor, e.g. blk.0.attn_q.weight."""
    a: np.ndarray
    """lora_a: r x n_in (peft lora_A.weight)."""
    b: np.ndarray
    """lora_b: n_out x r (peft lora_B.weight, rows permuted for q/k)."""


def find_adapter_dir(path: Path) -> Path:
    """`path` itself when it holds adapter_config.json, else a run folder's train/adapter/."""
    for candidate in (path, path / "train" / "adapter"):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise ExportError(f"{path} has no adapter_config.json (nor train/adapter/adapter_config.json): pass a peft "
                      "adapter folder (save_pretrained output) or a run folder")


def read_adapter_config(adapter_dir: Path) -> dict:
    """adapter_config.json, refused unless it is a plain LoRA llama.cpp can apply exactly."""
    try:
        cfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ExportError(f"{adapter_dir / 'adapter_config.json'} is not valid JSON: {exc}") from None
    if cfg.get("peft_type") != "LORA":
        raise ExportError(f"peft_type {cfg.get('peft_type')!r} is not supported: llama.cpp applies LoRA adapters only")
    for key, plain in _PLAIN_LORA.items():
        if (cfg.get(key) or plain) != plain:
            raise ExportError(f"adapter_config {key}={cfg[key]!r} is not supported: llama.cpp applies plain LoRA "
                              f"(B A scaled by alpha/r); re-train with {key}={plain!r}")
    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise ExportError(f"{adapter_dir} has no adapter_model.safetensors: save the adapter with safetensors")
    return cfg


def resolve_base(cfg: dict, base: str | Path | None) -> Path:
    """The base model folder: `base`, else adapter_config's base_model_name_or_path (a folder or a Hub id)."""
    name = str(base or cfg.get("base_model_name_or_path") or "")
    if not name:
        raise ExportError("adapter_config.json names no base model: pass --base BASE_HF_DIR")
    if Path(name).is_dir():
        return Path(name)
    if base is not None:
        raise ExportError(f"--base {name} is not a folder")
    from huggingface_hub import snapshot_download  # a Hub id, as train.py records it

    return Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "*.jinja"]))


def _expected_shape(gguf_name: str, spec: LlamaSpec) -> tuple[int, int]:
    """(n_out, n_in) of a base projection, from config.json."""
    q, kv = spec.n_head * spec.head_dim, spec.n_head_kv * spec.head_dim
    shapes = {"attn_q": (q, spec.n_embd), "attn_k": (kv, spec.n_embd), "attn_v": (kv, spec.n_embd),
              "attn_output": (spec.n_embd, q), "ffn_gate": (spec.n_ff, spec.n_embd),
              "ffn_up": (spec.n_ff, spec.n_embd), "ffn_down": (spec.n_embd, spec.n_ff)}
    return shapes[gguf_name.split(".")[2]]


def _pair(module: str, a: np.ndarray, b: np.ndarray, spec: LlamaSpec) -> LoraPair:
    mapped = gguf_tensor_name(f"{module}.weight")
    if mapped is None or not mapped[0].startswith("blk.") or mapped[0].endswith("norm.weight"):
        raise ExportError(f"LoRA on {module!r} is not supported: Iris exports adapters of the attention and MLP "
                          "projections (q/k/v/o, gate/up/down) only")
    name, heads = mapped
    layer = int(name.split(".")[1])
    if layer >= spec.n_layer:
        raise ExportError(f"adapter has layer {layer} but the base has {spec.n_layer} layers: wrong --base?")
    n_out, n_in = _expected_shape(name, spec)
    if a.shape[1] != n_in or b.shape[0] != n_out or a.shape[0] != b.shape[1]:
        raise ExportError(f"{module}: lora_A {a.shape} / lora_B {b.shape} do not fit the base's {n_out}x{n_in} "
                          f"weight (expected lora_A r x {n_in}, lora_B {n_out} x r): wrong --base?")
    return LoraPair(name, a, permute_for_gguf(b, getattr(spec, heads)) if heads else b)


def read_lora_pairs(adapter_dir: Path, spec: LlamaSpec) -> list[LoraPair]:
    """Every A/B pair of the adapter, checked against the base `spec`, in GGUF file order."""
    from safetensors.torch import load_file  # torch reads bfloat16 (a QLoRA adapter's dtype), numpy cannot

    halves: dict[str, dict[str, np.ndarray]] = {}
    for key, value in load_file(str(adapter_dir / "adapter_model.safetensors")).items():
        match = _LORA_KEY.match(key)
        if match is None:
            raise ExportError(f"adapter tensor {key!r} is not a LoRA A/B weight; cannot map it to GGUF")
        halves.setdefault(match.group(1), {})[match.group(2)] = value.float().numpy()
    incomplete = [module for module, ab in halves.items() if len(ab) != 2]
    if incomplete:
        raise ExportError(f"adapter has lora_A without lora_B (or the reverse) for {incomplete[0]!r}")
    if not halves:
        raise ExportError(f"{adapter_dir} holds no LoRA weights")
    pairs = [_pair(module, ab["A"], ab["B"], spec) for module, ab in sorted(halves.items())]
    return sorted(pairs, key=lambda p: (int(p.name.split(".")[1]), p.name))


def write_adapter_gguf(pairs: list[LoraPair], alpha: float, out_path: Path, info: GeneralInfo, out_type: str) -> None:
    """The LoRA GGUF llama.cpp's `llama_adapter_lora_init` reads (see the module docstring)."""
    dtype = ADAPTER_TYPES[out_type]
    writer = gguf.GGUFWriter(out_path, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        writer.add_name(info.name)
        if info.base_model:
            writer.add_base_model_count(1)
            writer.add_base_model_name(0, info.base_model)
        for pair in pairs:
            for suffix, array in (("lora_a", pair.a), ("lora_b", pair.b)):
                with np.errstate(over="ignore"):
                    data = np.ascontiguousarray(array, dtype=dtype)
                if not np.isfinite(data).all():
                    raise ExportError(f"{pair.name}.{suffix} overflows {out_type}: export with --type F32")
                writer.add_tensor(f"{pair.name}.{suffix}", data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


def export_adapter(source: str | Path, out_path: str | Path, base: str | Path | None = None,
                   out_type: str = "F16", verify: bool = False) -> dict:
    """Write the adapter in `source` (adapter or run folder) as a LoRA GGUF at `out_path`, atomically.

    Returns the record also written to `<out>.json` (sha256, rank, alpha, base, verification).
    Raises ExportError, with the reason, for anything llama.cpp would refuse or apply differently.
    """
    if out_type not in ADAPTER_TYPES:
        raise ExportError(f"adapter GGUF type must be F16 or F32, got {out_type!r}")
    adapter_dir, out_path = find_adapter_dir(Path(source)), Path(out_path)
    cfg = read_adapter_config(adapter_dir)
    base_dir = resolve_base(cfg, base)
    spec = read_llama_spec(base_dir)
    pairs = read_lora_pairs(adapter_dir, spec)
    info = GeneralInfo(name=Path(source).resolve().name, base_model=cfg.get("base_model_name_or_path"))
    with atomic_path(out_path) as tmp:
        write_adapter_gguf(pairs, cfg["lora_alpha"], tmp, info, out_type)
        report = verify_adapter(base_dir, adapter_dir, tmp) if verify else None
        if report is not None and not report["passed"]:
            raise ExportError(f"{out_path} failed verification: {report['summary']}")
    record = {"path": str(out_path), "sha256": sha256_of(out_path), "size_bytes": out_path.stat().st_size,
              "type": out_type, "rank": sorted({int(p.a.shape[0]) for p in pairs}), "alpha": cfg["lora_alpha"],
              "tensors": len(pairs) * 2, "source": str(adapter_dir.resolve()), "base": str(base_dir),
              "verification": report, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    with atomic_path(out_path.with_name(out_path.name + ".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    return record


# ---------------------------------------------------------------- the data an adapter was trained on


def data_sha256(recipe: Recipe, root: Path) -> str | None:
    """One sha256 over the data `recipe` trains on: each dataset's settings (format, split, rows, options...) and the
    sha256 of its local files (`path`, `test_path`, relative to `root`), in recipe order. None when a dataset is not
    a local file (a Hub dataset id: its bytes are not here to hash)."""
    digest = hashlib.sha256()
    for spec in recipe.datasets:
        digest.update(json.dumps(spec.model_dump(mode="json"), sort_keys=True).encode("utf-8"))
        for name in filter(None, (spec.path, spec.test_path)):
            path = root / name
            if not path.is_file():
                return None
            digest.update(sha256_of(path).encode("ascii"))
    return digest.hexdigest()


def adapter_data_check(entry: ModelEntry, root: Path) -> tuple[bool, str]:
    """(stale, a sentence saying why) for `entry`'s adapter: stale when the `data_sha256` the registry records differs
    from the sha256 of its recipe's data now. Not stale, and the sentence says why it cannot tell, when `entry` is not
    an adapter, records no `data_sha256`, has no recipe or trains on data that is not all local."""
    adapter = entry.source.adapter
    if adapter is None or adapter.data_sha256 is None or entry.recipe is None:
        return False, (f"{entry.id}: the registry records no training-data sha256 for it (source.adapter.data_sha256, "
                       "with a recipe): nothing to compare")
    now = data_sha256(entry.recipe, root)
    if now is None:
        return False, f"{entry.id}: its recipe trains on data that is not a local file (a Hub dataset): cannot hash it"
    if now == adapter.data_sha256:
        return False, f"{entry.id}: its adapter was trained on the recipe's current data (sha256 {now})"
    return True, (f"{entry.id}: its adapter was trained on data sha256 {adapter.data_sha256}, the recipe's data is "
                  f"now sha256 {now}: the adapter is stale; rebuild it (`python -m training rebuild {entry.id}`) and "
                  "record the new sha256 in source.adapter.data_sha256")


def stale_adapter(entry: ModelEntry, root: Path) -> str | None:
    """Why `entry`'s adapter is stale (its recipe's data changed since it was trained), or None (`adapter_data_check`)."""
    stale, reason = adapter_data_check(entry, root)
    return reason if stale else None


# ---------------------------------------------------------------- verification


def merged_model(base_dir: Path, adapter_dir: Path):
    """The float32 base with the adapter merged by peft: the reference llama.cpp base + adapter must match."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    return PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload().eval()


def verify_adapter(base_dir: Path, adapter_dir: Path, adapter_gguf: Path) -> dict:
    """llama.cpp (F32 base GGUF from our exporter + the adapter) vs the merged model in transformers.

    Logits at every position of verify.py's prompts under its `check_logits` thresholds, and the
    `GREEDY_TOKENS` greedy tokens after each prompt (argmax, no sampler) must be equal.
    """
    from transformers import AutoTokenizer

    from training.export.verify import (LOGITS_PROMPTS, compare_logits, gguf_greedy, gguf_logits, model_greedy,
                                        model_logits)

    tok = AutoTokenizer.from_pretrained(base_dir)
    batch = [tok(p)["input_ids"] for p in LOGITS_PROMPTS]
    model = merged_model(base_dir, adapter_dir)
    want = model_logits(model, batch)
    want_greedy = model_greedy(model, batch, GREEDY_TOKENS)
    del model
    with tempfile.TemporaryDirectory(dir=adapter_gguf.parent) as scratch:
        base_gguf = Path(scratch) / "base-F32.gguf"
        convert_to_gguf(base_dir, base_gguf, GeneralInfo(name="verify-base"), "F32")
        logits = compare_logits(want, gguf_logits(base_gguf, batch, lora_path=adapter_gguf))
        got_greedy = gguf_greedy(base_gguf, batch, GREEDY_TOKENS, lora_path=adapter_gguf)
    greedy_equal = got_greedy == want_greedy
    return {"passed": logits["passed"] and greedy_equal, "logits": logits, "greedy_equal": greedy_equal,
            "greedy": {"transformers": want_greedy, "llama_cpp": got_greedy},
            "summary": f"logits max|diff| {logits['max_abs_diff']:.4f} (tolerance {logits['tolerance']:.3f}), "
                       f"argmax flips {logits['argmax_flips']}/{logits['positions']}, "
                       f"greedy {'equal' if greedy_equal else 'DIFFERENT'}"}


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path, metavar="RUN_OR_ADAPTER_DIR",
                        help="peft adapter folder (adapter_config.json) or a run folder (its train/adapter/)")
    parser.add_argument("out", type=Path, help="output LoRA .gguf (sha256 recorded in OUT.json)")
    parser.add_argument("--base", help="base model HF folder (default: adapter_config's base_model_name_or_path)")
    parser.add_argument("--type", default="F16", choices=sorted(ADAPTER_TYPES), help="tensor type (default F16)")
    parser.add_argument("--verify", action="store_true",
                        help="compare llama.cpp base + adapter with the merged model in transformers")


def main(args: argparse.Namespace) -> int:
    try:
        record = export_adapter(args.source, args.out, base=args.base, out_type=args.type, verify=args.verify)
    except ExportError as exc:
        print(f"error: {exc}")
        return 2
    if record["verification"] is not None:
        print(f"verification: {record['verification']['summary']}")
    print(f"wrote {record['path']} (LoRA rank {record['rank']}, alpha {record['alpha']}, "
          f"{record['size_bytes'] / 2**20:.1f} MiB)")
    print(f"sha256 {record['sha256']}")
    return 0
