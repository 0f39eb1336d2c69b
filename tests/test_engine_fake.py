"""The engine's own logic on a fake model (tests/fakes.py), no weights: stop texts split across pieces,
template tokens, the token limit, trimming with one notice, the context meter, queue notes, cancel,
pool eviction. The same behaviour on llama.cpp is in test_serving_engine.py and test_batching.py."""

import threading

import pytest

from serving.config import ServingSettings
from serving.engine import ChatRequest, Engine, InputTooLong
from serving.generation import GenerationSettings
from tests.fakes import FakeLoader, fake_registry

SETTINGS = GenerationSettings(temperature=0.0, max_new_tokens=50)


def engine_for(tmp_path, script, context_length=2048, **kw) -> tuple[Engine, FakeLoader]:
    loader = FakeLoader(script, **kw)
    return Engine(fake_registry(tmp_path, context_length), ServingSettings(ram_budget_mb=1), loader), loader


def ask(text="Where is my order?", model="fake-a", **kw) -> ChatRequest:
    return ChatRequest(model, [{"role": "user", "content": text}], kw.pop("settings", SETTINGS), **kw)


def test_a_stop_text_split_across_pieces_never_shows(tmp_path):
    engine, _ = engine_for(tmp_path, ["The parcel ", "is on its way. EN", "D of message", " more"])
    text, stats = engine.complete(ask(stop=("END",)))
    assert text == "The parcel is on its way. " and stats.finish_reason == "stop"


def test_template_tokens_in_the_output_end_the_answer_unseen(tmp_path):
    engine, _ = engine_for(tmp_path, ["Sure", ", done", "<|eot_", "id|>", "<|start_header_id|>user"])
    text, stats = engine.complete(ask())
    assert text == "Sure, done" and stats.finish_reason == "stop"


def test_the_token_limit_is_a_length_finish(tmp_path):
    engine, _ = engine_for(tmp_path, ["x"] * 20)
    text, stats = engine.complete(ask(settings=SETTINGS.merged(max_new_tokens=5)))
    assert text == "xxxxx" and stats.finish_reason == "length" and stats.n_tokens == 5


def test_long_history_is_trimmed_once_with_a_notice_and_the_meter_agrees(tmp_path):
    engine, loader = engine_for(tmp_path, ["ok"], context_length=256)
    history = []
    for i in range(12):
        history += [{"role": "user", "content": f"question {i} " * 3}, {"role": "assistant", "content": "ok " * 5}]
    request = ChatRequest("fake-a", [*history, {"role": "user", "content": "last"}], SETTINGS, "c1")
    usage = engine.context_usage(request)
    events = list(engine.stream(request))
    notices = [e for e in events if e.kind == "notice"]
    assert len(notices) == 1 and "left out" in notices[0].text
    stats = events[-1].stats
    assert stats.dropped_turns == usage.dropped > 0 and usage.limit == 256
    assert usage.used == len(loader.loaded[0].prompts[-1]) <= 256 - usage.reserve
    with pytest.raises(InputTooLong):
        engine.complete(ask("y" * 300))


def test_a_waiting_request_gets_a_queue_note_first(tmp_path):
    engine, _ = engine_for(tmp_path, ["hi"], queued=2)
    events = list(engine.stream(ask()))
    assert events[0].kind == "queued" and "position 2" in events[0].text and events[-1].kind == "done"


def test_cancel_ends_the_answer_as_cancelled(tmp_path):
    engine, _ = engine_for(tmp_path, ["word "] * 200)
    cancel, seen = threading.Event(), []
    for event in engine.stream(ask(), cancel):
        seen.append(event)
        cancel.set()
    assert seen[-1].stats.finish_reason == "cancelled" and len(seen) < 10


def test_the_pool_unloads_the_least_recently_used_fake_to_fit(tmp_path):
    engine, loader = engine_for(tmp_path, ["ok"], size=700_000)  # budget 1 MiB: one model at a time
    engine.complete(ask(model="fake-a"))
    engine.complete(ask(model="fake-b"))
    assert [m.entry.id for m in loader.loaded] == ["fake-a", "fake-b"] and loader.loaded[0].closed
    assert engine.pool.loaded_ids() == ["fake-b"]


def test_the_callers_cancel_event_is_left_alone(tmp_path):
    """One event may stop several answers (compare's two panes): ending one answer must not set it."""
    engine, _ = engine_for(tmp_path, ["Done", " END", " more"])
    shared = threading.Event()
    engine.complete(ask(stop=("END",)), shared)  # ended by a stop text
    batches = engine.stream_batches(ask(), shared)
    next(batches)
    batches.close()  # a consumer that went away
    assert not shared.is_set()
    assert engine.complete(ask(), shared)[1].finish_reason == "stop"
