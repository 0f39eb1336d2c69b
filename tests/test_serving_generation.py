"""Visitor-chosen generation settings: one range per knob for the UI sliders and the API, checked server-side."""

import math

import gradio as gr
import pytest

from pages import compare, support_chat
from serving.config import ServingSettings
from serving.engine import Engine
from serving.errors import InvalidInput
from serving.generation import VISITOR_KNOBS, GenerationSettings, visitor_seed, visitor_settings


def test_the_pages_sliders_are_the_visitor_ranges():
    assert all(support_chat.SLIDERS[k] is VISITOR_KNOBS[k] for k in support_chat.SLIDERS)
    assert compare.SLIDERS is VISITOR_KNOBS


@pytest.mark.parametrize("name, value, message", [
    ("max_new_tokens", 8192, "8192 is outside 8–1024; choose a value in that range"),
    ("temperature", math.nan, "nan is not a number"),
    ("top_p", [0.5], "is not a number"),
    ("repeat_penalty", True, "is not a number"),
    ("seed", 1, "cannot be chosen here"),
])
def test_out_of_range_or_odd_values_are_refused_by_name(name, value, message):
    with pytest.raises(InvalidInput) as err:
        visitor_settings(GenerationSettings(), **{name: value})
    assert f"Invalid setting {name}" in err.value.user_message and message in err.value.user_message


def test_chosen_values_replace_the_defaults_and_none_keeps_them():
    settings = visitor_settings(GenerationSettings(max_new_tokens=4096), max_new_tokens=1024.0, temperature=None)
    assert settings.max_new_tokens == 1024 and isinstance(settings.max_new_tokens, int)
    assert settings.temperature == GenerationSettings().temperature


def test_seeds_are_whole_numbers_in_range_or_empty():
    assert visitor_seed("") is None and visitor_seed(None) is None and visitor_seed(7.0) == 7
    for bad in (math.nan, -1, 2**31, 1.5, "x"):
        with pytest.raises(InvalidInput, match="whole number"):
            visitor_seed(bad)


def test_the_support_chat_api_refuses_what_its_sliders_cannot_reach(registry):
    engine = Engine(registry, ServingSettings(ram_budget_mb=64))
    page = support_chat.SupportChat(engine, engine.personas)
    with pytest.raises(gr.Error, match="8192 is outside 8–1024"):
        next(page.chat_api("Hi", "order_assistant", "demo-support", max_new_tokens=8192))
