"""The eval judge through a real OpenAI-compatible server on loopback: llama-cpp-python's own server
(`python -m llama_cpp.server`) serving the real SmolLM2-135M-Instruct GGUF. Scores come back in both
presentation orders under the schema; a dead endpoint and a server error are clear one-line errors
that never show the key. No mock of HTTP."""

import pytest

from serving.resolve import package_file
from tests.browser import free_port
from tests.servers import openai_server
from training.stages.judge import CRITERIA, endpoint_judge, judge_pair
from training.stages.run import StageError

KEY = "sk-iris-test-secret-0123"


@pytest.fixture(scope="module")
def judge_url(registry, tmp_path_factory):
    gguf, why = package_file(registry.get("smollm2-135m-instruct"))
    assert gguf, why
    with openai_server(gguf, tmp_path_factory.mktemp("judge") / "server.log") as url:
        yield url


def test_endpoint_judge_scores_both_orders_under_the_schema(judge_url, monkeypatch):
    monkeypatch.setenv("IRIS_JUDGE_URL", judge_url)
    monkeypatch.setenv("IRIS_JUDGE_KEY", KEY)
    monkeypatch.setenv("IRIS_JUDGE_FORMAT", "json_object")
    scores = judge_pair(endpoint_judge(), "How long do returns take?", "Returns are accepted within 30 days.",
                        "I like turtles.")
    assert scores["orders_parsed"] == 2
    for who in ("base", "finetune"):
        assert set(scores[who]) == set(CRITERIA) and all(1 <= v <= 5 for v in scores[who].values())


def test_a_server_error_is_one_clear_line_without_the_key(judge_url, monkeypatch):
    monkeypatch.setenv("IRIS_JUDGE_URL", judge_url.replace("/v1", "/no-such-api/v1"))
    monkeypatch.setenv("IRIS_JUDGE_KEY", KEY)
    with pytest.raises(StageError, match=r"answered HTTP 404") as err:
        endpoint_judge()([{"role": "user", "content": "hi"}])
    assert KEY not in str(err.value)


def test_a_dead_endpoint_is_unreachable_not_a_traceback(monkeypatch):
    monkeypatch.setenv("IRIS_JUDGE_URL", f"http://127.0.0.1:{free_port()}/v1")
    monkeypatch.setenv("IRIS_JUDGE_KEY", KEY)
    with pytest.raises(StageError, match="is unreachable") as err:
        endpoint_judge()([{"role": "user", "content": "hi"}])
    assert KEY not in str(err.value)


def test_unknown_schema_format_is_refused(monkeypatch):
    monkeypatch.setenv("IRIS_JUDGE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("IRIS_JUDGE_FORMAT", "xml")
    with pytest.raises(StageError, match="IRIS_JUDGE_FORMAT='xml' is not one of json_schema, json_object, none"):
        endpoint_judge()
