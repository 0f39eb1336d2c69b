"""Uploads: the real app on loopback refuses a file larger than the largest one it reads (a chat transcript,
`serving.transcript.MAX_FILE_BYTES`) at Gradio's upload route, before it is stored; a file of exactly that
size still goes through. Plain HTTP, as a browser's upload sends it: no browser needed.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from serving.transcript import MAX_FILE_BYTES
from tests.browser import launch_app

UPLOAD_ROUTE = "/gradio_api/upload"  # where every Gradio upload component posts its files


def stored(folder: Path) -> dict[str, int]:
    """Every file under `folder` with its size."""
    return {str(p): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def upload(url: str, size: int) -> httpx.Response:
    files = {"files": ("chat.json", b"x" * size, "application/json")}
    return httpx.post(url + UPLOAD_ROUTE, files=files, timeout=60)


def test_an_upload_over_the_transcript_limit_is_refused_before_it_is_stored(tmp_path):
    cache = tmp_path / "gradio"  # the app's upload folder, so what an upload leaves there can be seen
    with launch_app({"GRADIO_TEMP_DIR": str(cache)}) as url:
        before = stored(cache)
        refused = upload(url, MAX_FILE_BYTES + 1)
        assert refused.status_code == 413 and f"maximum allowed size of {MAX_FILE_BYTES} bytes" in refused.text
        assert stored(cache) == before  # not even the part received before the limit was kept
        accepted = upload(url, MAX_FILE_BYTES)
        assert accepted.status_code == 200, accepted.text
        (path,) = accepted.json()
        assert stored(cache)[path] == MAX_FILE_BYTES
