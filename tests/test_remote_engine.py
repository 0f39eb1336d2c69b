"""A registry entry served by a remote OpenAI-compatible endpoint, through the engine, against a real server
on loopback (llama-cpp-python's own server with an API key, serving the demo GGUF). No mock of HTTP.

It streams with stats, honours stop texts and cancel, constrains JSON in the server's dialect (or refuses
clearly where the entry says the server cannot), and turns server down, a wrong key and a timeout into
visitor messages that never show the key."""

import json
import threading

import pytest

from serving.config import ServingSettings
from serving.engine import ChatRequest, Engine, InvalidInput, ModelUnavailable
from serving.generation import GenerationSettings
from serving.registry import load_registry, parse_registry
from tests.browser import free_port
from tests.servers import openai_server

KEY = "sk-iris-remote-test-0456"
KEY_ENV = "IRIS_TEST_REMOTE_KEY"
GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=24, seed=0)


@pytest.fixture(scope="module")
def server_url(demo_paths, tmp_path_factory):
    with openai_server(demo_paths["demo-support"], tmp_path_factory.mktemp("remote") / "server.log",
                       "--api_key", KEY) as url:
        yield url


def remote_engine(url: str, **remote) -> Engine:
    entry = {"id": "remote", "display_name": "Remote model", "kind": "base", "context_length": 2048,
             "source": {"remote": {"base_url": url, "model": "demo", "api_key_env": KEY_ENV,
                                   "json_format": "json_object", **remote}}}
    registry = parse_registry({"hub_owner": "test", "models": [entry]}, load_registry().path)
    return Engine(registry, ServingSettings())


def ask(text: str = "Where is my order?", **kw) -> ChatRequest:
    return ChatRequest("remote", [{"role": "user", "content": text}], kw.pop("settings", GREEDY), **kw)


@pytest.fixture
def keyed(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)


def test_a_remote_model_streams_tokens_and_stats(server_url, keyed):
    engine = remote_engine(server_url)
    assert engine.status("remote").available
    events = list(engine.stream(ask()))
    assert events[-1].kind == "done" and all(e.kind == "token" for e in events[:-1]) and len(events) > 2
    stats = events[-1].stats
    assert stats.source == "remote" and stats.sha256 is None and stats.n_tokens > 1 and stats.ttft_s > 0
    assert stats.tokens_per_s > 0 and stats.finish_reason in ("stop", "length")  # usage is optional in a stream


def test_stop_texts_and_cancel(server_url, keyed):
    engine = remote_engine(server_url)
    text, _ = engine.complete(ask(settings=GenerationSettings(temperature=0.0, max_new_tokens=40)))
    word = next(w for w in text.split() if len(w) > 3)
    stopped, stats = engine.complete(ask(settings=GenerationSettings(temperature=0.0, max_new_tokens=40),
                                         stop=(word,)))
    assert word not in stopped and text.startswith(stopped.rstrip()) and stats.finish_reason == "stop"

    cancel = threading.Event()
    long = GenerationSettings(temperature=1.0, max_new_tokens=400, seed=1)
    events = []
    for event in engine.stream(ask("Tell me everything about returns.", settings=long), cancel):
        events.append(event)
        cancel.set()
    assert events[-1].stats.finish_reason == "cancelled" and len(events) < 10


def test_json_schema_in_the_servers_dialect_or_a_clear_refusal(server_url, keyed):
    schema = {"type": "object", "properties": {"answer": {"type": "string", "maxLength": 30}}, "required": ["answer"]}
    fmt = {"type": "json_object", "schema": schema}
    text, _ = remote_engine(server_url).complete(ask("Reply in JSON", response_format=fmt,
                                                     settings=GenerationSettings(max_new_tokens=60, seed=2)))
    assert isinstance(json.loads(text)["answer"], str)
    with pytest.raises(InvalidInput, match="cannot constrain answers to JSON"):
        list(remote_engine(server_url, json_format="none").stream(ask(response_format=fmt)))


def test_a_wrong_key_is_a_clear_message_without_the_key(server_url, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-789")
    with pytest.raises(ModelUnavailable) as err:
        list(remote_engine(server_url).stream(ask()))
    assert "refused this server's API key" in err.value.user_message and KEY_ENV in err.value.user_message
    assert "sk-wrong-key-789" not in err.value.user_message + str(err.value) and KEY not in str(err.value)


def test_a_missing_key_variable_makes_the_model_unavailable_in_the_catalog(server_url, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    status = remote_engine(server_url).status("remote")
    assert not status.available and KEY_ENV in status.reason


def test_server_down_and_timeout_are_visitor_messages(server_url, keyed):
    down = remote_engine(f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(ModelUnavailable) as err:
        list(down.stream(ask()))
    assert "cannot be reached right now" in err.value.user_message and "try again" in err.value.user_message
    slow = remote_engine(server_url, read_timeout_s=0.001)
    with pytest.raises(ModelUnavailable) as err:
        list(slow.stream(ask()))
    assert "did not answer within 0.001 s" in err.value.user_message


def test_a_server_that_streams_garbage_is_a_visitor_message(monkeypatch):
    """A real (if broken) HTTP server on loopback that answers 200 with a stream that is not JSON."""
    import http.server

    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b"data: {not json\n\n")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(KEY_ENV, KEY)
    try:
        with pytest.raises(ModelUnavailable) as err:
            list(remote_engine(f"http://127.0.0.1:{server.server_port}/v1").stream(ask()))
        assert "could not read" in err.value.user_message and "try again" in err.value.user_message
    finally:
        server.shutdown()
