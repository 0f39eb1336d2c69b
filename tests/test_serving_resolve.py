"""Resolving registry entries to verified GGUF files: local paths, a pre-filled offline HF cache,
sha256 and size checks (a refused Hub download leaves the cache), a real download from a Hub-compatible
endpoint on 127.0.0.1, and availability reasons.

No internet: the Hub is either disabled (HF_HUB_OFFLINE=1) or a loopback HTTP server.
"""

import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import pytest
import yaml

from serving.config import ServingSettings
from serving.engine import ChatRequest, Engine, ModelUnavailable
from serving.generation import GenerationSettings
from serving.registry import load_registry
from serving.resolve import Resolver

REPO_ID, FILENAME, COMMIT = "iris-test/demo-support-GGUF", "demo-support-Q4_K_M.gguf", "a" * 40
WRONG_SHA = "0" * 64
GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=8, seed=0)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fill_hf_cache(cache: Path, gguf: Path) -> None:
    """The layout huggingface_hub writes: blobs/<etag>, snapshots/<commit>/<file> -> blob, refs/main."""
    repo = cache / f"models--{REPO_ID.replace('/', '--')}"
    blob = repo / "blobs" / sha256(gguf)
    blob.parent.mkdir(parents=True)
    shutil.copyfile(gguf, blob)
    snapshot = repo / "snapshots" / COMMIT / FILENAME
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(Path("../..") / "blobs" / blob.name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


def hub_entry(model_id: str, sha: str | None, published: bool = True, filename: str = FILENAME) -> dict:
    hub = {"repo": REPO_ID, "filename": filename, "revision": "main", **({"sha256": sha} if sha else {})}
    return {"id": model_id, "display_name": model_id, "kind": "base", "source": {"hub": hub},
            "context_length": 512, "published": published}


def write_registry(folder: Path, entries: list[dict]):
    path = folder / "registry.yaml"
    path.write_text(yaml.safe_dump({"hub_owner": "iris-test", "models": entries}))
    return load_registry(path)


@pytest.fixture
def hub_registry(tmp_path, demo_paths):
    gguf = demo_paths["demo-support"]
    return write_registry(tmp_path, [
        hub_entry("cached", sha256(gguf)),
        hub_entry("cached-bad-sha", WRONG_SHA),
        hub_entry("not-cached", None, filename="other.gguf"),
        hub_entry("unpublished", None, published=False, filename="later.gguf"),
        {"id": "local-missing", "display_name": "Missing", "kind": "demo", "context_length": 512,
         "source": {"local": {"path": "nowhere/missing.gguf"}}},
    ])


def test_offline_cache_resolves_and_serves_a_hub_entry(tmp_path, hub_registry, demo_paths, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fill_hf_cache(tmp_path / "hf", demo_paths["demo-support"])
    engine = Engine(hub_registry, ServingSettings(cache_dir=tmp_path / "hf", ram_budget_mb=1024))
    try:
        status = {s.id: s for s in engine.catalog()}
        assert status["cached"].available and status["cached"].reason is None
        text, stats = engine.complete(ChatRequest("cached", [{"role": "user", "content": "Hi"}], GREEDY))
        assert (stats.revision, stats.sha256) == ("main", sha256(demo_paths["demo-support"]))
        assert "/snapshots/" in stats.source and stats.source.endswith("/demo-support-Q4_K_M.gguf")  # served from the cache
        assert stats.n_tokens > 0
    finally:
        engine.close()


def test_sha256_mismatch_refuses_the_file_and_marks_it_unavailable(tmp_path, hub_registry, demo_paths, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fill_hf_cache(tmp_path / "hf", demo_paths["demo-support"])
    engine = Engine(hub_registry, ServingSettings(cache_dir=tmp_path / "hf", ram_budget_mb=1024))
    try:
        with pytest.raises(ModelUnavailable, match="sha256 mismatch") as err:
            engine.complete(ChatRequest("cached-bad-sha", [{"role": "user", "content": "Hi"}], GREEDY))
        assert "integrity check" in err.value.user_message
        assert engine.pool.loaded_ids() == []  # the file was never loaded
        status = engine.status("cached-bad-sha")
        assert not status.available and "integrity" in status.reason
        assert engine.resolver.cached_path(hub_registry.get("cached-bad-sha")) is None  # not kept as if valid
    finally:
        engine.close()


def test_unavailable_entries_say_why(tmp_path, hub_registry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = Engine(hub_registry, ServingSettings(cache_dir=tmp_path / "empty", ram_budget_mb=1024))
    status = {s.id: s for s in engine.catalog()}
    assert not status["not-cached"].available and "HF_HUB_OFFLINE" in status["not-cached"].reason
    assert not status["unpublished"].available and "not published" in status["unpublished"].reason
    assert not status["local-missing"].available and "build-demo" in status["local-missing"].reason
    assert "missing.gguf" in status["local-missing"].reason and str(tmp_path) not in status["local-missing"].reason
    with pytest.raises(ModelUnavailable, match="hf_hub_download failed") as err:
        engine.complete(ChatRequest("not-cached", [{"role": "user", "content": "Hi"}], GREEDY))
    assert "could not be fetched" in err.value.user_message


def test_repo_registry_offline_serves_the_demo_models_and_marks_hub_entries(registry, demo_paths, tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = Engine(registry, ServingSettings(cache_dir=tmp_path / "empty", ram_budget_mb=1024))
    status = {s.id: s for s in engine.catalog()}
    assert status["demo-support"].available and status["demo-base"].available
    hub = [s for s in status.values() if registry.get(s.id).is_hub]
    assert hub and all(not s.available and s.reason for s in hub)
    assert status["smollm2-135m-instruct"].available  # ships in an installed package: no Hub needed
    # the shipped support adapter (committed in release/) over it: the default, with nothing built first
    assert status["smollm2-135m-support"].available and engine.default_model("support") == "smollm2-135m-support"
    # a Llama fine-tune is a Hub adapter over a Hub base: unavailable offline, saying why, as its base is
    tuned = status["llama-3.2-1b-support"]
    assert not tuned.available and "base model Llama 3.2 1B Instruct is not available" in tuned.reason
    assert "HF_HUB_OFFLINE" in tuned.reason


class _HubHandler(http.server.BaseHTTPRequestHandler):
    """Just enough of the Hub's `resolve` endpoint for hf_hub_download: HEAD metadata and GET bytes."""

    files: dict[str, bytes] = {}

    def _send_headers(self) -> bytes | None:
        body = self.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return body

    def do_HEAD(self):  # noqa: N802 (http.server's naming)
        self._send_headers()

    def do_GET(self):  # noqa: N802
        body = self._send_headers()
        if body is not None:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_hub(demo_paths):
    body = demo_paths["demo-support"].read_bytes()
    _HubHandler.files = {f"/{REPO_ID}/resolve/{revision}/{FILENAME}": body for revision in ("main", COMMIT)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_from_a_loopback_hub_reports_progress_and_verifies(tmp_path, hub_registry, loopback_hub,
                                                                   demo_paths, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    resolver = Resolver(hub_registry, cache_dir=tmp_path / "hf", endpoint=loopback_hub)
    assert resolver.availability(hub_registry.get("cached")).reason.startswith("downloads")
    seen = []
    path = resolver.fetch(hub_registry.get("cached"), lambda fraction, text: seen.append((fraction, text)))
    assert sha256(path) == sha256(demo_paths["demo-support"])
    assert str(path).startswith(str(tmp_path / "hf")) and f"snapshots/{COMMIT}" in str(path)
    downloads = [(fraction, text) for fraction, text in seen if text.startswith("Downloading cached")]
    assert downloads and downloads[-1][0] == 1.0 and "MiB" in downloads[-1][1]
    assert seen[-1] == (0.0, "Verifying cached (sha256)")
    with pytest.raises(ModelUnavailable, match="sha256 mismatch"):
        resolver.fetch(hub_registry.get("cached-bad-sha"))
    missing = resolver.availability(hub_registry.get("not-cached"))
    assert not missing.available and "other.gguf@main not found on the Hub" in missing.reason
    unreachable = Resolver(hub_registry, cache_dir=tmp_path / "hf2", endpoint="http://127.0.0.1:9")  # closed port
    assert "Hub unreachable" in unreachable.availability(hub_registry.get("cached")).reason


def pinned_entry(model_id: str, size: int, sha: str) -> dict:
    """A Hub entry pinned as the public bases are: a commit, the file's size and its sha256."""
    entry = hub_entry(model_id, sha)
    entry["source"]["hub"].update(revision=COMMIT, size=size)
    return entry


@pytest.mark.parametrize("pin", ["size", "sha256"])
def test_a_download_that_fails_its_pin_is_refused_with_the_reason_and_dropped(pin, tmp_path, loopback_hub, demo_paths,
                                                                             monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    gguf = demo_paths["demo-support"]
    size, sha = gguf.stat().st_size, sha256(gguf)
    if pin == "size":  # the size is checked first: a wrong one fails without hashing the file
        bad, what = pinned_entry("bad", size + 1, sha), "wrong size"
        detail = f"expected {size + 1:,} bytes, got {size:,} bytes"
    else:
        bad, what, detail = pinned_entry("bad", size, WRONG_SHA), "sha256 mismatch", f"expected {WRONG_SHA}, got {sha}"
    registry = write_registry(tmp_path, [bad, pinned_entry("good", size, sha)])
    resolver = Resolver(registry, cache_dir=tmp_path / "hf", endpoint=loopback_hub)
    seen = []
    with pytest.raises(ModelUnavailable) as err:
        resolver.fetch(registry.get("bad"), lambda fraction, text: seen.append(text))
    assert f"bad: {what} for " in str(err.value) and detail in str(err.value)
    assert "removed from the Hugging Face cache, so the next use downloads it again" in str(err.value)
    assert f"failed the integrity check ({what})" in err.value.user_message
    assert any(text.startswith("Downloading bad") for text in seen)  # it was downloaded from the loopback Hub ...
    assert any(text.startswith("Verifying") for text in seen) == (pin == "sha256")  # ... and hashed only for sha256
    assert resolver.cached_path(registry.get("bad")) is None and not list((tmp_path / "hf").rglob("blobs/*"))
    path = resolver.fetch(registry.get("good"))  # the same file, pinned right: downloaded afresh, and it passes
    assert f"snapshots/{COMMIT}" in str(path) and sha256(path) == sha
