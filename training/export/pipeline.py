"""`export_gguf`: HF folder -> F16 GGUF -> quantized GGUF (+ optional verification), written atomically.

Every file lands under a temporary name in the destination folder and is renamed into place only
when complete, so a crash or a refused model never leaves a half-written GGUF. The result's sha256
is recorded next to it in `<out>.json` together with the quant, size, source and verification report.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from serving.files import atomic_path, sha256_of, temp_sibling
from training.export.convert import ExportError, GeneralInfo, convert_to_gguf
from training.export.quantize import ftype_constant, quantize


class VerificationError(ExportError):
    """The exported files were written but failed a parity check; `.report` holds the details."""

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ExportResult:
    """What `export_gguf` produced."""

    path: Path
    """The final GGUF file."""
    sha256: str
    """Hex sha256 of `path`."""
    quant: str
    """Registry quant name of `path` (e.g. Q4_K_M)."""
    f16_path: Path | None
    """The unquantized GGUF, when kept (`keep_f16`) or when `quant` is itself F16/F32."""
    size_bytes: int
    """Size of `path` in bytes."""
    report: dict | None
    """Verification report when `verify=True`."""


def unquantized_type(quant: str) -> str:
    """F16 for every llama.cpp quant; F32 when the target needs more than F16 holds (F32, BF16)."""
    return "F32" if quant in ("F32", "BF16") else "F16"


def f16_sibling(out_path: Path, quant: str, base_type: str) -> Path:
    """`x-Q4_K_M.gguf` -> `x-F16.gguf` (or `x-Q4_K_M-F16.gguf` when the name does not end in the quant)."""
    stem = out_path.stem
    stem = stem[: -len(quant)].rstrip("-._") if stem.endswith(quant) else stem
    return out_path.with_name(f"{stem}-{base_type}.gguf")


def _write_record(out_path: Path, record: dict) -> None:
    with atomic_path(out_path.with_name(out_path.name + ".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


def export_gguf(
    hf_dir: str | Path,
    out_path: str | Path,
    quant: str = "Q4_K_M",
    verify: bool = False,
    name: str | None = None,
    base_model: str | None = None,
    finetune: str | None = None,
    license: str | None = None,
    keep_f16: bool = False,
) -> ExportResult:
    """Convert a Hugging Face Llama folder to a `quant` GGUF at `out_path`; see the module docstring."""
    hf_dir, out_path = Path(hf_dir), Path(out_path)
    ftype_constant(quant)  # refuses an unknown quant name before any work
    if not hf_dir.is_dir():
        raise ExportError(f"{hf_dir} is not a folder: pass a Hugging Face model folder (save_pretrained output)")
    info = GeneralInfo(name=name or hf_dir.name, finetune=finetune, base_model=base_model, license=license)
    base_type = unquantized_type(quant)
    base_final = out_path if quant == base_type else f16_sibling(out_path, quant, base_type)

    base_tmp = temp_sibling(base_final)
    out_tmp = base_tmp if base_final == out_path else temp_sibling(out_path)  # one file when quant is F16/F32
    try:
        convert_to_gguf(hf_dir, base_tmp, info, base_type)
        if out_tmp != base_tmp:
            quantize(base_tmp, out_tmp, quant)
        report = _verify(hf_dir, base_tmp, out_tmp) if verify else None
        result = ExportResult(path=out_path, sha256=sha256_of(out_tmp), quant=quant,
                              f16_path=base_final if keep_f16 or out_tmp == base_tmp else None,
                              size_bytes=out_tmp.stat().st_size, report=report)
        os.replace(out_tmp, out_path)  # only complete (and, with verify, checked) files get their final name
        if result.f16_path is not None and base_tmp != out_tmp:
            os.replace(base_tmp, base_final)
    finally:
        base_tmp.unlink(missing_ok=True)
        out_tmp.unlink(missing_ok=True)
    _write_record(out_path, {
        **asdict(result), "source": str(hf_dir.resolve()), "general": asdict(info),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    })
    if report is not None and not report["passed"]:
        raise VerificationError(f"{out_path} failed verification: {report['summary']}", report)
    return result


def _verify(hf_dir: Path, base_path: Path, quant_path: Path) -> dict:
    from training.export.verify import verify_export

    return verify_export(hf_dir, base_path, quant_path)
