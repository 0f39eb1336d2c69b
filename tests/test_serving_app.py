"""The app shell: routes, explicit queue limits, loopback by default and 0.0.0.0 only in a Space."""

import app
from serving.config import ServingSettings
from serving.engine import Engine


def test_launch_is_loopback_unless_in_a_space():
    assert app.launch_options([], {}) == {"server_name": "127.0.0.1", "server_port": 7860, "share": False,
                                          "show_error": False}
    assert app.launch_options([], {"SPACE_ID": "iris-llm/iris"})["server_name"] == "0.0.0.0"
    assert app.launch_options([], {"GRADIO_SERVER_PORT": "8123"})["server_port"] == 8123
    assert app.launch_options(["--port", "9001"], {"GRADIO_SERVER_PORT": "8123"})["server_port"] == 9001


def test_build_app_mounts_the_pages_and_configures_the_queue(registry, demo_paths, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    blocks = app.build_app(Engine(registry, ServingSettings(ram_budget_mb=512, slots=3, max_queue=5)))
    assert [path for path, *_ in blocks.pages] == ["", "study", "compare"]
    assert blocks._queue.max_size == app.QUEUE_MAX_SIZE
    assert blocks._queue.default_concurrency_limit == 3 + 5  # every slot, plus the engine's own queue
    api_names = {dep.api_name for dep in blocks.fns.values() if dep.api_visibility != "private"}
    assert "chat" in api_names  # the support chat's validated API endpoint


def test_the_gradio_file_cache_is_swept(registry, demo_paths, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    blocks = app.build_app(Engine(registry, ServingSettings(ram_budget_mb=512)))
    assert blocks.delete_cache == app.DELETE_CACHE and app.DELETE_CACHE[1] <= 3600
