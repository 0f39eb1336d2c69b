"""File helpers shared by the serving layer, the pages and the training toolkit: a file's sha256 and
atomic writes (a reader sees the old file or the new one, never half of one).

Standard library and huggingface_hub's hasher only; training imports these, never the reverse.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from huggingface_hub.utils.sha import sha_fileobj


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (huggingface_hub's hasher, as the Hub computes it)."""
    with open(path, "rb") as handle:
        return sha_fileobj(handle).hex()


def temp_sibling(final: Path) -> Path:
    """A fresh hidden name in `final`'s folder (so the rename never crosses file systems); unique per call,
    so two threads writing the same file never share one. Nothing is created."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `final`; rename it onto `final` on success, delete it on any error."""
    tmp = temp_sibling(Path(final))
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through `atomic_path`."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
