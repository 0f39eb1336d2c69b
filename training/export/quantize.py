"""Quantize an F16/F32 GGUF with llama.cpp's own quantizer (llama-cpp-python's `llama_model_quantize`).

The quant names are the registry's (`serving.registry.QUANT_TYPES`); this module maps them to
llama.cpp `llama_ftype` values and runs the C quantizer in-process. It never writes the final
path itself: the caller hands it a temporary path and renames on success.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from serving.registry import QUANT_TYPES


class QuantizeError(RuntimeError):
    """llama.cpp refused or failed to quantize a file."""


def ftype_constant(quant: str) -> str:
    """The llama-cpp-python constant name for a registry quant name, e.g. Q4_K_M -> LLAMA_FTYPE_MOSTLY_Q4_K_M."""
    if quant not in QUANT_TYPES:
        raise ValueError(f"unknown quant {quant!r}; expected one of {', '.join(QUANT_TYPES)}")
    return "LLAMA_FTYPE_ALL_F32" if quant == "F32" else f"LLAMA_FTYPE_MOSTLY_{quant}"


def ftype_value(quant: str) -> int:
    """The integer `llama_ftype` for a registry quant name."""
    import llama_cpp

    return int(getattr(llama_cpp, ftype_constant(quant)))


def quantize(src: Path, dst: Path, quant: str, threads: int | None = None) -> None:
    """Quantize GGUF `src` into `dst` as `quant` (a QUANT_TYPES name)."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype_value(quant)
    params.nthread = threads or os.cpu_count() or 1
    status = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if status != 0:
        raise QuantizeError(f"llama.cpp could not quantize {src} to {quant} (status {status}); see its log above")
