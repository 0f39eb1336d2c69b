"""Files handed to a visitor as downloads: each in a fresh folder under one root, old folders swept away.

Gradio copies a returned file into its own cache (which the app sweeps with `delete_cache`), so the
folder written here is only needed for a moment; folders older than `max_age_s` are removed on every
write, which bounds the disk this uses by the download rate instead of the uptime.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

MAX_AGE_S = 3600.0


def write_download(content: str | bytes, filename: str, kind: str, max_age_s: float = MAX_AGE_S,
                   root: Path | None = None) -> Path:
    """Write `content` to `filename` in a new folder under `<root>/iris-<kind>` and return its path."""
    base = (root or Path(tempfile.gettempdir())) / f"iris-{kind}"
    base.mkdir(parents=True, exist_ok=True)
    sweep(base, max_age_s)
    path = Path(tempfile.mkdtemp(dir=base)) / filename
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def sweep(base: Path, max_age_s: float) -> None:
    """Remove the folders in `base` last changed more than `max_age_s` ago."""
    cutoff = time.time() - max_age_s
    for folder in base.iterdir():
        try:
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:  # another request swept it first
            continue
