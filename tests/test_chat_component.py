"""The shared chat's handlers without a browser: the context meter's words, the browser key, and what the
sidebar actions do to a visitor's stored conversations (no model is needed for any of these)."""

import json

import gradio as gr
import pytest

from pages.chat import Chat, browser_secret, context_line, edited_text
from serving.config import ServingSettings
from serving.engine import Engine
from serving.personas import load_personas
from serving.transcript import Conversation, Library, Message, ModelRef, edit, to_json


@pytest.fixture(scope="module")
def chat(registry):
    personas = load_personas()
    return Chat(Engine(registry, ServingSettings(ram_budget_mb=64)), personas.group("support"), "test chat")


def stored(*conversations: Conversation) -> dict:
    library = Library()
    for conversation in reversed(conversations):
        library = library.put(conversation)
    return library.stored()


def conversation(question: str = "Where is my order?") -> Conversation:
    return Conversation(persona="order_assistant", model=ModelRef(id="demo-support"),
                        messages=[Message(role="user", content=question), Message(role="assistant", content="Soon.")]
                        ).titled()


def test_the_meter_warns_before_and_after_turns_are_dropped():
    assert context_line(100, 4096, 0, 256) == "Context: 100 / 4096 tokens (2%)"
    assert "nearly full" in context_line(3200, 4096, 0, 256)
    assert "the oldest 4 messages no longer fit" in context_line(3800, 4096, 4, 256)
    assert context_line(0, 0, 0, 0) == ""


def test_edited_text_takes_strings_and_text_parts():
    assert edited_text("hi") == "hi" and edited_text([{"type": "text", "text": "a"}, "b"]) == "ab"
    assert edited_text(None) == ""


def test_the_browser_key_is_the_setting_else_made_once(tmp_path, monkeypatch):
    assert browser_secret(ServingSettings(browser_secret="fixed")) == "fixed"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = browser_secret(ServingSettings())
    assert len(first) == 64 and browser_secret(ServingSettings()) == first
    assert (tmp_path / "iris" / "browser-secret").read_text() == first


def test_new_select_rename_and_delete(chat):
    one, two = conversation("one?"), conversation("two?")
    store = stored(one, two)
    view = chat.new(store)
    assert view[0] == [] and view[1]["active"] is None and len(view[1]["conversations"]) == 2
    opened = chat.select(two.id, view[1])
    assert opened[0][0]["content"] == "two?" and opened[10:13] == ["order_assistant", "demo-support",
                                                                   ["order_assistant", "demo-support"]]
    renamed = chat.rename("  My   parcel ", opened[1])
    assert renamed[1]["conversations"][0]["title"] == "My parcel"
    with pytest.raises(gr.Error, match="cannot be empty"):
        chat.rename("  ", opened[1])
    deleted = chat.delete(renamed[1])
    assert [c["id"] for c in deleted[1]["conversations"]] == [one.id] and deleted[0] == []
    with pytest.raises(gr.Error, match="Open a conversation first"):
        chat.delete(deleted[1])


def test_switching_branches_shows_the_other_version(chat):
    edited = edit(conversation("old question?"), 0, "new question?")
    view = chat.switch_branch(0, stored(edited))
    assert view[0][0]["content"] == "old question?"
    assert view[8]["choices"][0][0].startswith("Message 1 was: new question?")


def test_import_checks_the_file_and_the_persona(chat, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(to_json(conversation("imported?")))
    view = chat.import_file(str(good), {})
    assert view[0][0]["content"] == "imported?" and "Imported" in view[4]
    data = json.loads(good.read_text())
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**data, "persona": "study_tutor"}))
    with pytest.raises(gr.Error, match="Unknown persona 'study_tutor'"):
        chat.import_file(str(other), {})
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * 2_000_001)
    with pytest.raises(gr.Error, match="at most 2 MB"):
        chat.import_file(str(huge), {})


def test_nothing_to_export_or_continue_is_said_plainly(chat):
    with pytest.raises(gr.Error, match="Nothing to export yet"):
        chat.export({})
    with pytest.raises(gr.Error, match="no cut-off answer"):
        next(chat.continue_answer(stored(conversation()), "order_assistant", "demo-support", 0.5, 0.9, 64, 1.1))
