"""GGUF export: Hugging Face Llama folder -> GGUF (our converter) -> llama.cpp quant, with parity checks.

    from training.export import export_gguf
    result = export_gguf("models/x-hf", "models/x-Q4_K_M.gguf", quant="Q4_K_M", verify=True)

`convert` writes the unquantized GGUF, `quantize` calls llama.cpp's quantizer, `verify` compares
the GGUF against the Hugging Face model, `pipeline` ties them together atomically, `cli` is
`python -m training export`. `gguf_import` goes the other way (`python -m training import-gguf`): a GGUF
back to a Hugging Face folder with the tokenizer its `training.families` family describes.
"""

from training.export.convert import ExportError
from training.export.pipeline import ExportResult, VerificationError, export_gguf

__all__ = ["ExportError", "ExportResult", "VerificationError", "export_gguf"]
