"""The `/chat` API through gradio_client against the app on loopback: answers, and validation errors."""

import pytest

pytestmark = pytest.mark.slow


def test_chat_api_answers_and_validates_like_the_ui(app_url):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(app_url, verbose=False)
    answer = client.predict("Where is my order?", "order_assistant", "demo-support",
                            [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
                            0.0, 0.9, 32, 1.1, api_name="/chat")["answer"]
    assert isinstance(answer, str) and answer.strip() and "<|" not in answer

    cases = [
        (("Hi", "pirate"), "Unknown persona 'pirate'"),
        (("Hi", "order_assistant", "gpt-9"), "Unknown model 'gpt-9'"),
        (("   ", "order_assistant"), "the message is empty: type a question first"),
        (("x" * 9000, "order_assistant"), "the limit is 8000"),
        (("Hi", "order_assistant", "", None, 3.5), "Invalid setting temperature"),
        (("Hi", "order_assistant", "", None, None, None, 8192), "8192 is outside 8–1024"),
        (("Hi", "order_assistant", "", [{"role": "robot"}]), "Invalid history item #1"),
        (("Hi", "order_assistant", "llama-3.2-1b-instruct"), "unavailable"),
    ]
    for args, message in cases:
        with pytest.raises(AppError, match=message):
            client.predict(*args, api_name="/chat")
