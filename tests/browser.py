"""Shared browser-test helpers: the app on a loopback port in a subprocess, driven by Debian's Chromium.

Use from any test module (the fixtures are also re-exported by tests/conftest.py):

    pytestmark = pytest.mark.browser

    def test_something(app_url, chromium_page):
        open_page(chromium_page, app_url, "/study")
        chromium_page.get_by_role("button", name="Send").click()

`app_url` (session scope) starts `python3 app.py` once, offline (HF_HUB_OFFLINE=1, an empty HF
cache, so only the demo models are available) and stops it at the end. `launch_app(env)` starts
an extra instance with other environment variables; `endless_app_url` is one whose model never ends an answer
by itself (for Stop, hang-up and queue tests that must not race the model's speed). `chromium_page` is a fresh page in a shared
headless Chromium (never a downloaded browser). Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("IRIS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
START_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def offline_env(extra: dict[str, str] | None = None, hf_cache: Path | None = None) -> dict[str, str]:
    """Environment for an app subprocess: offline Hub, no analytics, the given overrides on top."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    env.pop("SPACE_ID", None)
    if hf_cache is not None:
        env["HF_HUB_CACHE"] = str(hf_cache)
    env.update(extra or {})
    return env


def _wait_until_up(url: str, process: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited with code {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/config", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"app did not answer on {url} within {timeout_s:.0f}s:\n{log_path.read_text()[-4000:]}")


@contextmanager
def launch_app(env: dict[str, str] | None = None, timeout_s: float = START_TIMEOUT_S) -> Iterator[str]:
    """Run `python3 app.py --port N` on 127.0.0.1 offline; yield its base URL; stop it afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="iris-app-"))
    port, log_path = free_port(), workdir / "app.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=REPO,
                                   env=offline_env(env, hf_cache=workdir / "hf-cache"), stdout=log,
                                   stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, log_path, timeout_s)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if os.environ.get("IRIS_KEEP_APP_LOG"):
            print(f"app log kept at {log_path}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def demo_only_registry(folder: Path) -> Path:
    """A registry file with just the two tiny demo models (absolute paths), for tests that need a closed set."""
    import yaml

    raw = yaml.safe_load((REPO / "model_registry.yaml").read_text(encoding="utf-8"))
    raw["models"] = [e for e in raw["models"] if e["kind"] == "demo"]
    for entry in raw["models"]:
        entry["source"]["local"]["path"] = str(REPO / entry["source"]["local"]["path"])
    raw["defaults"] = {"support": ["demo-support"], "study": ["demo-base"], "compare": [["demo-support", "demo-base"]]}
    path = folder / "demo_registry.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


ENDLESS = "smollm2-endless"
"""A test-only registry entry: the real SmolLM2 with `ignore_eos`, so its answers run to `max_new_tokens`. The
pages' personas cap that at 256 tokens; a test that must click while an answer streams raises it to 1,024 (a minute
and more on a loaded 2-core box), so a Stop click or a hang-up always lands while the answer still streams."""


def endless_registry(folder: Path) -> Path:
    """The repo registry plus `ENDLESS` (local paths made absolute), opening every page on it."""
    import yaml

    raw = yaml.safe_load((REPO / "model_registry.yaml").read_text(encoding="utf-8"))
    for entry in raw["models"]:
        local = entry["source"].get("local")
        if local:
            local["path"] = str(REPO / local["path"])
    smollm2 = next(e for e in raw["models"] if e["id"] == "smollm2-135m-instruct")
    raw["models"].append({**smollm2, "id": ENDLESS, "display_name": "SmolLM2 135M (never ends: test only)",
                          "generation": {**smollm2["generation"], "max_new_tokens": 1024, "ignore_eos": True}})
    raw["defaults"] = {"support": [ENDLESS], "study": [ENDLESS], "compare": [[ENDLESS, "demo-base"]]}
    path = folder / "endless_registry.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def open_page(page, base_url: str, path: str = "/") -> None:
    """Navigate to `path` of the app and wait until Gradio has rendered it."""
    page.goto(base_url.rstrip("/") + path, wait_until="load")
    page.wait_for_selector(".gradio-container", timeout=60_000)
    page.wait_for_selector("footer", timeout=60_000)  # Gradio renders its footer once the app is mounted


def shown_markdown(elem_id: str) -> str:
    """A JS expression: the text a `gr.Markdown` with `elem_id` shows, without Gradio's progress tracker (which
    writes "queue: 1/1 | 0.1s" into the same block while any event with it as an output runs)."""
    return f"(document.querySelector('#{elem_id} [data-testid=\"markdown\"]')?.innerText ?? '')"


def markdown_text(page, elem_id: str) -> str:
    """What the `gr.Markdown` with `elem_id` shows now (see `shown_markdown`)."""
    return page.evaluate(shown_markdown(elem_id))


def settled_text(page, selector: str, quiet_ms: int = 300, timeout_ms: int = 30_000) -> str:
    """The last `selector` element's text once it stopped changing for `quiet_ms`: a chat's Markdown renders
    apart from the footer beside it, so the footer saying "done" does not mean the answer is on screen yet."""
    page.wait_for_function(
        "([sel, quiet]) => { const els = document.querySelectorAll(sel);"
        " const t = els.length ? els[els.length - 1].innerText : null; const now = performance.now();"
        " const w = window.__irisSettled ||= {}; if (w[sel]?.text !== t) { w[sel] = {text: t, at: now}; return false; }"
        " return t !== null && now - w[sel].at >= quiet; }",
        arg=[selector, quiet_ms], polling=50, timeout=timeout_ms)
    return page.locator(selector).last.inner_text()


@pytest.fixture(scope="session")
def app_url() -> Iterator[str]:
    """Base URL of one offline app instance shared by the whole test session."""
    with launch_app() as url:
        yield url


@pytest.fixture(scope="session")
def endless_app_url(tmp_path_factory) -> Iterator[str]:
    """An app instance whose pages open on `ENDLESS` with one slot: answers that outlast any click, and a queue
    for the second visitor."""
    registry = endless_registry(tmp_path_factory.mktemp("endless"))
    with launch_app({"IRIS_REGISTRY": str(registry), "IRIS_SLOTS": "1"}) as url:
        yield url


@pytest.fixture(scope="session")
def chromium_browser():
    """A headless Debian Chromium shared by the session (skips when it is not installed)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def chromium_page(chromium_browser):
    """A fresh page (own context, 1280x900, clipboard allowed) closed after the test."""
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()
