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
from tests.browser import free_port

pytestmark = pytest.mark.slow
# The real SmolLM2 (about 50 tokens/s here) rather than the tiny demo model, which often ends its answer by itself
# before the hang-up is noticed: a 1,024-token answer at temperature 1 takes many seconds.
MODEL = "smollm2-135m-instruct"
LONG = ["Tell me everything about returns, refunds and delivery.", "order_assistant", MODEL, [], 1.0, 1.0, 1024, 1.0]


@pytest.fixture
def served(registry, demo_paths, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = Engine(registry, ServingSettings(ram_budget_mb=2048))
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
        seen = []
        for _ in range(3):  # should the model still end on its own before the hang-up is noticed: try again
            caplog.clear()
            chat_and_hang_up(http, fn_index)
            seen.append(finish(caplog))
            if seen[-1] and "cancelled" in seen[-1]:
                break
    assert seen[-1] and "cancelled" in seen[-1], seen
    assert engine.pool.users(MODEL) == 0  # the model is free for the next visitor
