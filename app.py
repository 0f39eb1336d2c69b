"""Iris app: assembles the pages into one multi-page Gradio app, and nothing else.

Routes: `/` support chat, `/study` study tools, `/compare` model comparison. Each page module
exposes `build(engine)`; all of them share one `serving.engine.Engine` (so one model pool and
one serialisation per model). Run `python app.py [--port N]`; it listens on 127.0.0.1, or on
0.0.0.0 inside a Hugging Face Space (SPACE_ID is set).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import gradio as gr

from pages import compare, study, support_chat
from serving.config import ServingSettings
from serving.context.layer import ContextLayer, ContextSettings
from serving.engine import Engine
from serving.personas import PERSONAS_DIR, PersonaBook, load_personas
from serving.registry import load_registry
from serving.selfcheck import run_selfcheck
from serving.transcript import MAX_FILE_BYTES

# llama.cpp's OpenMP threads spin while waiting by default; on a small shared CPU box (a Space, two
# models generating at once) spinning threads fight the web server and each other: decode fell from
# ~10 to ~1 token/s under load, while passive waiting costs ~15% on an idle box
# (benchmarks/RESULTS-serving.md). Set the variable yourself to override; it must be set before
# llama.cpp is loaded.
OMP_WAIT_POLICY = "PASSIVE"
QUEUE_MAX_SIZE = 64  # events waiting in Gradio's queue before visitors get "queue full"
# Every file an event returns is copied into Gradio's cache; sweep copies older than an hour, every 30 minutes
# (and all of them at start), so downloads do not fill the disk of a long-running Space.
DELETE_CACHE = (1800, 3600)


MAIN_PAGE = "Support chat"  # the page at `/`
ROUTES = (("Study tools", "/study", study), ("Compare", "/compare", compare))


def build_app(engine: Engine) -> gr.Blocks:
    with gr.Blocks(title="Iris", delete_cache=DELETE_CACHE) as app:
        gr.Navbar(main_page_name=MAIN_PAGE)
        support_chat.build(engine)
    for title, path, page in ROUTES:
        with app.route(title, path):
            gr.Navbar(main_page_name=MAIN_PAGE)  # a Navbar sets the bar of its own page only
            page.build(engine)
    # Workers per event: enough for every slot of a model plus the engine's own queue, so a waiting visitor
    # hears their place and wait from the engine ("queued"), and more than that get "busy, try again".
    workers = engine.settings.slots + engine.settings.max_queue
    app.queue(default_concurrency_limit=workers, max_size=QUEUE_MAX_SIZE)
    return app


def load_context(personas_dir: Path = PERSONAS_DIR,
                 settings: ContextSettings | None = None) -> tuple[PersonaBook, ContextLayer]:
    """The personas and their context layer, built once: every knowledge folder is read, checked and indexed now
    (and the orders database built from its CSV), so a bad article stops the app naming the file instead of failing
    a visitor's question. Settings default to the environment's (`ContextSettings.from_env`: which order store).
    Raises `PersonaError`/`KnowledgeError`/a bad setting (ValueErrors) naming the file or variable."""
    personas = load_personas(personas_dir)
    settings = ContextSettings.from_env() if settings is None else settings
    return personas, ContextLayer.from_personas(personas.personas.values(), personas_dir, settings)


def launch_options(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> dict:
    """`launch()` arguments: loopback unless in a Space (SPACE_ID set), port from --port or GRADIO_SERVER_PORT."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description="Run the Iris Gradio app.")
    parser.add_argument("--port", type=int, default=int(environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--host", default="0.0.0.0" if environ.get("SPACE_ID") else "127.0.0.1")
    args = parser.parse_args(argv)
    return {"server_name": args.host, "server_port": args.port, "share": False, "show_error": False}


def main() -> None:
    options = launch_options()
    os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
    settings = ServingSettings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check = run_selfcheck()  # in a child: a llama.cpp build this CPU cannot run is a message, not an outage
    if not check.ok:
        sys.exit(f"Iris cannot serve models on this machine: {check.message}")
    logging.getLogger(__name__).info("llama.cpp self-check: %s", check.message)
    try:
        personas, context = load_context()
    except ValueError as err:  # a persona, article or orders CSV row that cannot be used, named
        sys.exit(f"Iris cannot start: {err}")
    engine = Engine(load_registry(settings.registry_path), settings, personas=personas, context=context)
    # The largest file the app reads is an imported chat transcript: Gradio refuses a bigger upload (HTTP 413)
    # while receiving it, before it is stored (tests/test_upload_limit.py).
    build_app(engine).launch(**options, max_file_size=MAX_FILE_BYTES)


if __name__ == "__main__":
    main()
