"""The support chat's `/chat` handler on odd JSON values: each gets a short error naming it, never a generic one."""

import math

import gradio as gr
import pytest

from pages.support_chat import SupportChat
from serving.config import ServingSettings
from serving.engine import Engine
from serving.personas import load_personas


@pytest.fixture(scope="module")
def page(registry):
    return SupportChat(Engine(registry, ServingSettings(ram_budget_mb=64)), load_personas())


@pytest.mark.parametrize("kwargs, message", [
    ({"persona_id": ["order_assistant"]}, "Unknown persona"),
    ({"persona_id": {"id": 1}}, "Unknown persona"),
    ({"model_id": ["demo-support"]}, "Unknown model"),
    ({"history": 5}, "Invalid history: expected a list"),
    ({"history": "hello"}, "Invalid history: expected a list"),
    ({"temperature": math.nan}, "Invalid setting temperature: nan is not a number"),
    ({"max_new_tokens": "many"}, "Invalid setting max_new_tokens"),
])
def test_odd_json_values_get_a_specific_error(page, kwargs, message):
    with pytest.raises(gr.Error, match=message):
        next(page.chat_api("Hi", **{"persona_id": "order_assistant", "model_id": "demo-support", **kwargs}))
