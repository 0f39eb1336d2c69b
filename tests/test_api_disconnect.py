"""A `/chat` client that disconnects mid-answer stops the generation and frees the model.

The real app runs in this process on loopback (so the test can read the engine's log and pool); the
client is raw HTTP to Gradio's queue API, closing its event stream after the first streamed chunk.
"""

import logging
import time
import uuid

import httpx
import pytest

import app as iris_app
from serving.config import ServingSettings
from serving.engine import Engine
from serving.registry import load_registry
from tests.browser import ENDLESS, endless_registry, free_port

pytestmark = pytest.mark.slow
# A model that cannot end its answer by itself (the real SmolLM2 with ignore_eos: 1,024 tokens take many
# seconds), so the hang-up always lands while it still streams, whatever this CPU's speed.
MODEL = ENDLESS
LONG = ["Tell me everything about returns, refunds and delivery.", "order_assistant", MODEL, [], 1.0, 1.0, 1024, 1.0]


@pytest.fixture
def served(demo_paths, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = Engine(load_registry(endless_registry(tmp_path)), ServingSettings(ram_budget_mb=2048))
    blocks = iris_app.build_app(engine)
    port = free_port()
    blocks.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}", engine
    blocks.close()
    engine.close()


def chat_and_hang_up(http: httpx.Client, fn_index: int) -> None:
    """Start a long /chat answer, read until its first streamed chunk, then drop the connection."""
    session = uuid.uuid4().hex
    http.post("/gradio_api/queue/join", json={"data": LONG, "fn_index": fn_index, "session_hash": session,
                                              "event_data": None, "trigger_id": None}).raise_for_status()
    with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as events:
        for line in events.iter_lines():
            if '"process_generating"' in line or '"process_completed"' in line:
                break


def finish(caplog, timeout_s: float = 60.0) -> str | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ends = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"{MODEL}: ")]
        if ends:
            return ends[-1]
        time.sleep(0.05)
    return None


def test_a_client_that_disconnects_stops_the_generation(served, caplog):
    url, engine = served
    caplog.set_level(logging.INFO, logger="serving.engine")
    with httpx.Client(base_url=url, timeout=60) as http:
        fn_index = next(d["id"] for d in http.get("/config").json()["dependencies"] if d.get("api_name") == "chat")
        chat_and_hang_up(http, fn_index)
        seen = finish(caplog)
    assert seen and "cancelled" in seen, seen
    assert engine.pool.users(MODEL) == 0  # the model is free for the next visitor
