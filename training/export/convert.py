"""Hugging Face `LlamaForCausalLM` folder -> unquantized (F16/F32) GGUF, written with `gguf.GGUFWriter`.

Our own converter for exactly the models Iris serves (Llama-architecture models whose byte-level BPE
tokenizer belongs to a family in `training.families`: Llama 3.x `llama-bpe`, SmolLM2 `smollm`):
it reads `config.json`, the safetensors weights and the tokenizer files directly, refuses anything
it does not understand with a message naming it, and streams tensors one at a time so a 1B model
never sits in memory twice. Quantization and verification live in sibling modules; this module
knows nothing about llama.cpp beyond the file format it expects.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from training.families import Family, FamilyError, by_pre_tokenizer

SUPPORTED_ARCHITECTURE = "LlamaForCausalLM"
# HF per-layer tensor suffix -> (GGUF per-layer name, which head count to un-rotate it with or None)
_LAYER_TENSORS: dict[str, tuple[str, str | None]] = {
    "input_layernorm.weight": ("attn_norm.weight", None),
    "self_attn.q_proj.weight": ("attn_q.weight", "n_head"),
    "self_attn.k_proj.weight": ("attn_k.weight", "n_head_kv"),
    "self_attn.v_proj.weight": ("attn_v.weight", None),
    "self_attn.o_proj.weight": ("attn_output.weight", None),
    "post_attention_layernorm.weight": ("ffn_norm.weight", None),
    "mlp.gate_proj.weight": ("ffn_gate.weight", None),
    "mlp.up_proj.weight": ("ffn_up.weight", None),
    "mlp.down_proj.weight": ("ffn_down.weight", None),
}
_GLOBAL_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                   "lm_head.weight": "output.weight"}
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
_OUT_DTYPES = {"F16": (np.float16, gguf.LlamaFileType.MOSTLY_F16), "F32": (np.float32, gguf.LlamaFileType.ALL_F32)}


class ExportError(ValueError):
    """A model folder the exporter cannot convert; the message names what and what to do."""


@dataclass(frozen=True)
class RopeSpec:
    """Rotary position embedding settings read from `rope_parameters` / `rope_scaling`."""

    theta: float
    """Base frequency (`rope_theta`)."""
    kind: str = "default"
    """`default`, `linear` or `llama3`."""
    factor: float = 1.0
    """Scaling factor (linear and llama3)."""
    low_freq_factor: float = 1.0
    """llama3: wavelengths above original_context / low_freq_factor are divided by `factor`."""
    high_freq_factor: float = 4.0
    """llama3: wavelengths below original_context / high_freq_factor are left alone."""
    original_context: int = 8192
    """llama3: context length the model was pre-trained with."""


@dataclass(frozen=True)
class LlamaSpec:
    """The architecture facts a GGUF `llama` model needs, validated from config.json."""

    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_head_kv: int
    head_dim: int
    vocab_size: int
    context_length: int
    rms_eps: float
    tied_embeddings: bool
    rope: RopeSpec
    name_or_path: str = ""


@dataclass(frozen=True)
class TokenizerSpec:
    """A byte-level BPE vocabulary in GGUF terms."""

    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    pre: str
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    unk_id: int | None
    eot_id: int | None
    eom_id: int | None
    add_bos: bool
    add_eos: bool
    chat_template: str | None


@dataclass(frozen=True)
class GeneralInfo:
    """`general.*` metadata."""

    name: str
    basename: str | None = None
    finetune: str | None = None
    base_model: str | None = None
    license: str | None = None


# ---------------------------------------------------------------- config


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{path} is missing: expected a Hugging Face model folder (save_pretrained output)") from None
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path} is not valid JSON: {exc}") from None


def _rope_spec(cfg: dict) -> RopeSpec:
    # transformers 5 writes `rope_parameters` (theta inside); older files have rope_theta + rope_scaling.
    params = dict(cfg.get("rope_parameters") or cfg.get("rope_scaling") or {})
    theta = float(params.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    kind = params.get("rope_type", params.get("type", "default")) or "default"
    if kind == "default":
        return RopeSpec(theta=theta)
    if kind == "linear":
        return RopeSpec(theta=theta, kind="linear", factor=float(params["factor"]))
    if kind == "llama3":
        return RopeSpec(
            theta=theta, kind="llama3", factor=float(params["factor"]),
            low_freq_factor=float(params["low_freq_factor"]), high_freq_factor=float(params["high_freq_factor"]),
            original_context=int(params["original_max_position_embeddings"]),
        )
    raise ExportError(f"rope scaling type {kind!r} is not supported: Iris exports default, linear and llama3 rope")


def read_llama_spec(hf_dir: Path) -> LlamaSpec:
    """Validate config.json as a Llama model llama.cpp can run, or raise ExportError naming the problem."""
    cfg = _read_json(hf_dir / "config.json")
    archs = cfg.get("architectures") or [cfg.get("model_type", "unknown")]
    if archs != [SUPPORTED_ARCHITECTURE]:
        raise ExportError(f"architecture {archs[0]!r} is not supported: Iris exports {SUPPORTED_ARCHITECTURE} only")
    for flag in ("attention_bias", "mlp_bias"):
        if cfg.get(flag):
            raise ExportError(f"{flag}=true is not supported: Iris exports bias-free Llama models only")
    if cfg.get("hidden_act", "silu") != "silu":
        raise ExportError(f"hidden_act {cfg['hidden_act']!r} is not supported: Llama uses silu")
    n_head = int(cfg["num_attention_heads"])
    n_embd = int(cfg["hidden_size"])
    return LlamaSpec(
        n_layer=int(cfg["num_hidden_layers"]), n_embd=n_embd, n_ff=int(cfg["intermediate_size"]),
        n_head=n_head, n_head_kv=int(cfg.get("num_key_value_heads") or n_head),
        head_dim=int(cfg.get("head_dim") or n_embd // n_head), vocab_size=int(cfg["vocab_size"]),
        context_length=int(cfg.get("max_position_embeddings", 2048)), rms_eps=float(cfg.get("rms_norm_eps", 1e-5)),
        tied_embeddings=bool(cfg.get("tie_word_embeddings", False)), rope=_rope_spec(cfg),
        name_or_path=str(cfg.get("_name_or_path", "")),
    )


# ---------------------------------------------------------------- tensors


def permute_for_gguf(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder q/k projection rows from HF's rotate-half rope layout to llama.cpp's interleaved one.

    HF rotates row pairs (i, i + d/2) of each head; llama.cpp's normal rope rotates (2i, 2i + 1).
    So within each head the new row 2i+t is the old row t*d/2 + i.
    """
    rows, cols = weight.shape
    head_dim = rows // n_heads
    return weight.reshape(n_heads, 2, head_dim // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def llama3_rope_factors(rope: RopeSpec, head_dim: int) -> np.ndarray:
    """Per-frequency divisors for llama3 rope scaling, the `rope_freqs.weight` tensor llama.cpp applies.

    Same maths as transformers' llama3 inv_freq: long wavelengths are slowed by `factor`, short ones
    kept, the band between interpolated smoothly. llama.cpp divides each base frequency by this value.
    """
    inv_freq = 1.0 / (rope.theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim))
    wavelen = 2 * math.pi / inv_freq
    low_wavelen = rope.original_context / rope.low_freq_factor
    high_wavelen = rope.original_context / rope.high_freq_factor
    smooth = (rope.original_context / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor)
    medium = 1.0 / ((1 - smooth) / rope.factor + smooth)
    factors = np.where(wavelen < high_wavelen, 1.0, np.where(wavelen > low_wavelen, rope.factor, medium))
    return factors.astype(np.float32)


def _weight_files(hf_dir: Path) -> dict[str, Path]:
    """HF tensor name -> safetensors file holding it."""
    index = hf_dir / "model.safetensors.index.json"
    if index.exists():
        return {name: hf_dir / fname for name, fname in _read_json(index)["weight_map"].items()}
    single = hf_dir / "model.safetensors"
    if single.exists():
        from safetensors import safe_open

        with safe_open(str(single), framework="pt") as handle:
            return {name: single for name in handle.keys()}
    if any(hf_dir.glob("*.bin")):
        raise ExportError(f"{hf_dir} holds PyTorch .bin weights: re-save with save_pretrained(safe_serialization=True)")
    raise ExportError(f"{hf_dir} has no model.safetensors or model.safetensors.index.json")


def gguf_tensor_name(hf_name: str) -> tuple[str, str | None] | None:
    """(GGUF name, head count to `permute_for_gguf` with or None) of one HF Llama tensor; None if not one.

    The one naming rule for model and adapter exports (training/export/adapter.py names LoRA pairs by it).
    """
    match = _LAYER_RE.match(hf_name)
    if match and match.group(2) in _LAYER_TENSORS:
        gguf_suffix, heads = _LAYER_TENSORS[match.group(2)]
        return f"blk.{match.group(1)}.{gguf_suffix}", heads
    if hf_name in _GLOBAL_TENSORS:
        return _GLOBAL_TENSORS[hf_name], None
    return None


def gguf_tensor_plan(hf_names: list[str], spec: LlamaSpec) -> list[tuple[str, str, str | None]]:
    """(hf name, gguf name, permute-with) for every tensor to write, in file order; refuses unknown tensors."""
    plan = []
    for hf_name in hf_names:
        if hf_name.endswith("rotary_emb.inv_freq") or (hf_name == "lm_head.weight" and spec.tied_embeddings):
            continue  # recomputed by llama.cpp / shared with token_embd
        mapped = gguf_tensor_name(hf_name)
        if mapped is None:
            raise ExportError(f"tensor {hf_name!r} is not part of a Llama model; cannot map it to GGUF")
        plan.append((hf_name, *mapped))
    if not spec.tied_embeddings and "lm_head.weight" not in hf_names:
        raise ExportError("config says tie_word_embeddings=false but the weights have no lm_head.weight")
    return sorted(plan, key=lambda item: _tensor_order(item[1]))


def _tensor_order(gguf_name: str) -> tuple[int, str]:
    match = re.match(r"blk\.(\d+)\.", gguf_name)
    if match:
        return (int(match.group(1)) + 1, gguf_name)
    return (0 if gguf_name.startswith("token_embd") else 1 << 30, gguf_name)


def _prepare(array: np.ndarray, gguf_name: str, heads: str | None, spec: LlamaSpec, dtype: type) -> np.ndarray:
    if heads is not None:
        array = permute_for_gguf(array, getattr(spec, heads))
    if array.ndim == 1:
        return np.ascontiguousarray(array, dtype=np.float32)  # norms stay F32, as llama.cpp expects
    with np.errstate(over="ignore"):  # reported below with the tensor's name
        out = np.ascontiguousarray(array, dtype=dtype)
    if not np.isfinite(out).all():
        raise ExportError(f"tensor {gguf_name} overflows {np.dtype(dtype).name}: export with --quant F32 instead")
    return out


# ---------------------------------------------------------------- tokenizer


def _token_content(value: object) -> str | None:
    return value.get("content") if isinstance(value, dict) else value  # type: ignore[return-value]


def _family(pre: dict | None) -> Family:
    steps = (pre or {}).get("pretokenizers", [pre] if pre else [])
    if not any(s.get("type") == "ByteLevel" for s in steps):
        raise ExportError("tokenizer pre-tokenizer has no ByteLevel step: Iris exports byte-level BPE tokenizers only")
    try:
        return by_pre_tokenizer(pre)
    except FamilyError as exc:
        raise ExportError(str(exc)) from None


def _chat_template(hf_dir: Path, tok_cfg: dict) -> str | None:
    jinja = hf_dir / "chat_template.jinja"  # transformers 5 saves the template beside tokenizer_config.json
    if jinja.exists():
        return jinja.read_text(encoding="utf-8")
    template = tok_cfg.get("chat_template")
    if isinstance(template, list):  # named templates: keep the default one
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    return template


def _adds_bos(tok_json: dict, tok_cfg: dict, bos: str | None) -> bool:
    if "add_bos_token" in tok_cfg:
        return bool(tok_cfg["add_bos_token"])
    post = json.dumps(tok_json.get("post_processor") or {})
    return bos is not None and json.dumps(bos)[1:-1] in post


def read_tokenizer(hf_dir: Path, vocab_size: int) -> TokenizerSpec:
    """Read tokenizer.json / tokenizer_config.json as a GGUF `gpt2` vocabulary, or refuse what it is not."""
    tok_json = _read_json(hf_dir / "tokenizer.json")
    tok_cfg = _read_json(hf_dir / "tokenizer_config.json") if (hf_dir / "tokenizer_config.json").exists() else {}
    model = tok_json.get("model", {})
    if model.get("type") != "BPE":
        raise ExportError(f"tokenizer model {model.get('type')!r} is not supported: Iris exports byte-level BPE only")
    family = _family(tok_json.get("pre_tokenizer"))
    by_id: dict[int, str] = {idx: text for text, idx in model["vocab"].items()}
    types: dict[int, int] = {}
    for added in tok_json.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    n_tokens = max(by_id) + 1
    if n_tokens > vocab_size:
        raise ExportError(f"tokenizer has {n_tokens} ids but the model's vocab_size is {vocab_size}")
    tokens, token_types = [], []
    for idx in range(vocab_size):  # ids the tokenizer never produces become unused padding, as in llama.cpp
        tokens.append(by_id.get(idx, f"[PAD{idx}]"))
        token_types.append(int(types.get(idx, gguf.TokenType.NORMAL if idx in by_id else gguf.TokenType.UNUSED)))
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    ids = {text: idx for idx, text in by_id.items()}

    def id_of(key: str) -> int | None:
        return ids.get(_token_content(tok_cfg.get(key)) or "")

    bos = _token_content(tok_cfg.get("bos_token"))
    return TokenizerSpec(
        tokens=tokens, token_types=token_types, merges=merges, pre=family.gguf_pre,
        bos_id=id_of("bos_token"), eos_id=id_of("eos_token"), pad_id=id_of("pad_token"), unk_id=id_of("unk_token"),
        eot_id=ids.get(family.turn_end), eom_id=ids.get(family.eom or ""),
        add_bos=_adds_bos(tok_json, tok_cfg, bos), add_eos=bool(tok_cfg.get("add_eos_token", False)),
        chat_template=_chat_template(hf_dir, tok_cfg),
    )


# ---------------------------------------------------------------- writer


def _add_metadata(writer: gguf.GGUFWriter, spec: LlamaSpec, tok: TokenizerSpec, info: GeneralInfo, ftype: int) -> None:
    writer.add_type("model")
    writer.add_name(info.name)
    writer.add_basename(info.basename or info.name)
    if info.finetune:
        writer.add_finetune(info.finetune)
    if info.base_model:
        writer.add_base_model_count(1)
        writer.add_base_model_name(0, info.base_model)
    if info.license:
        writer.add_license(info.license)
    writer.add_file_type(int(ftype))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    writer.add_vocab_size(spec.vocab_size)
    writer.add_context_length(spec.context_length)
    writer.add_embedding_length(spec.n_embd)
    writer.add_feed_forward_length(spec.n_ff)
    writer.add_block_count(spec.n_layer)
    writer.add_head_count(spec.n_head)
    writer.add_head_count_kv(spec.n_head_kv)
    writer.add_rope_dimension_count(spec.head_dim)
    if spec.head_dim != spec.n_embd // spec.n_head:
        writer.add_key_length(spec.head_dim)
        writer.add_value_length(spec.head_dim)
    writer.add_rope_freq_base(spec.rope.theta)
    if spec.rope.kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(spec.rope.factor)
    writer.add_layer_norm_rms_eps(spec.rms_eps)

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tok.pre)
    writer.add_token_list(tok.tokens)
    writer.add_token_types(tok.token_types)
    writer.add_token_merges(tok.merges)
    for setter, value in ((writer.add_bos_token_id, tok.bos_id), (writer.add_eos_token_id, tok.eos_id),
                          (writer.add_pad_token_id, tok.pad_id), (writer.add_unk_token_id, tok.unk_id),
                          (writer.add_eot_token_id, tok.eot_id),
                          (writer.add_eom_token_id, tok.eom_id)):
        if value is not None:
            setter(value)
    writer.add_add_bos_token(tok.add_bos)
    writer.add_add_eos_token(tok.add_eos)
    if tok.chat_template:
        writer.add_chat_template(tok.chat_template)


class _Weights:
    """Read-only view of a folder's safetensors shards, opened once, tensors loaded one at a time."""

    def __init__(self, hf_dir: Path):
        from safetensors import safe_open

        self.location = _weight_files(hf_dir)
        self._stack = contextlib.ExitStack()
        self._handles = {path: self._stack.enter_context(safe_open(str(path), framework="pt"))
                         for path in sorted(set(self.location.values()))}

    def names(self) -> list[str]:
        return sorted(self.location)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handles[self.location[name]].get_slice(name).get_shape())

    def array(self, name: str) -> np.ndarray:
        import torch  # safetensors' numpy reader has no bfloat16, torch does

        return self._handles[self.location[name]].get_tensor(name).to(torch.float32).numpy()

    def close(self) -> None:
        self._stack.close()


def _tensor_shapes(weights: _Weights, plan, spec: LlamaSpec, dtype: type) -> list[tuple[str, tuple[int, ...], type]]:
    shapes = []
    for hf_name, gguf_name, _ in plan:
        shape = weights.shape(hf_name)
        shapes.append((gguf_name, shape, np.float32 if len(shape) == 1 else dtype))
    if spec.rope.kind == "llama3":
        shapes.append(("rope_freqs.weight", (spec.head_dim // 2,), np.float32))
    return shapes


def _tensor_arrays(weights: _Weights, plan, spec: LlamaSpec, dtype: type) -> Iterator[np.ndarray]:
    """The tensors in `_tensor_shapes` order, converted for GGUF."""
    for hf_name, gguf_name, heads in plan:
        yield _prepare(weights.array(hf_name), gguf_name, heads, spec, dtype)
    if spec.rope.kind == "llama3":
        yield llama3_rope_factors(spec.rope, spec.head_dim)


def _check_shapes(shapes: list[tuple[str, tuple[int, ...], type]], spec: LlamaSpec) -> None:
    expected = {"token_embd.weight": (spec.vocab_size, spec.n_embd),
                "blk.0.attn_q.weight": (spec.n_head * spec.head_dim, spec.n_embd),
                "blk.0.attn_k.weight": (spec.n_head_kv * spec.head_dim, spec.n_embd)}
    found = {name: shape for name, shape, _ in shapes}
    for name, shape in expected.items():
        if found.get(name) != shape:
            raise ExportError(f"tensor {name} has shape {found.get(name)}, config.json implies {shape}")
    layers = {int(m.group(1)) for name in found if (m := re.match(r"blk\.(\d+)\.", name))}
    if layers != set(range(spec.n_layer)):
        raise ExportError(f"weights hold layers {sorted(layers)}, config.json says {spec.n_layer}")
    missing = [f"blk.{i}.{suffix}" for i in range(spec.n_layer) for suffix, _ in _LAYER_TENSORS.values()
               if f"blk.{i}.{suffix}" not in found]
    if missing:
        raise ExportError(f"weights lack {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")


def convert_to_gguf(hf_dir: Path, out_path: Path, info: GeneralInfo, out_type: str = "F16") -> None:
    """Write `hf_dir` as an `out_type` (F16 or F32) GGUF at `out_path` (the caller makes it atomic)."""
    if out_type not in _OUT_DTYPES:
        raise ExportError(f"unquantized GGUF type must be F16 or F32, got {out_type!r}")
    dtype, ftype = _OUT_DTYPES[out_type]
    spec = read_llama_spec(hf_dir)
    tok = read_tokenizer(hf_dir, spec.vocab_size)
    weights = _Weights(hf_dir)
    writer = gguf.GGUFWriter(out_path, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    try:
        plan = gguf_tensor_plan(weights.names(), spec)
        shapes = _tensor_shapes(weights, plan, spec, dtype)
        _check_shapes(shapes, spec)
        _add_metadata(writer, spec, tok, info, ftype)
        for name, shape, tensor_dtype in shapes:  # header first, then stream the data tensor by tensor
            nbytes = int(np.prod(shape)) * np.dtype(tensor_dtype).itemsize
            writer.add_tensor_info(name, shape, np.dtype(tensor_dtype), nbytes)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for array in _tensor_arrays(weights, plan, spec, dtype):
            writer.write_tensor_data(array)
    finally:
        writer.close()
        weights.close()
