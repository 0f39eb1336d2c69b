"""Real servers on loopback for tests: llama-cpp-python's own OpenAI-compatible server on a GGUF."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.browser import free_port


@contextmanager
def openai_server(gguf: Path, log_path: Path, *args: str, start_timeout_s: float = 120) -> Iterator[str]:
    """`python -m llama_cpp.server` serving `gguf` on 127.0.0.1; yields its `/v1` URL, stops it afterwards.

    `args` are extra server flags (e.g. "--api_key", KEY); readiness is polled on `/v1/models`, which
    answers 401 without the key, so any HTTP answer counts as started."""
    port = free_port()
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host",
                                   "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", *args],
                                  stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}/v1"
        try:
            _wait_ready(url, server, start_timeout_s)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def _wait_ready(url: str, server: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url + "/models", timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # it answered (e.g. 401 without the key): it is up
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "llama_cpp.server did not start"
            time.sleep(0.5)
