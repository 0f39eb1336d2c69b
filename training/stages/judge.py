"""Optional LLM-as-judge for `eval`: scores two answers to one prompt from 1 to 5 for correctness,
completeness and faithfulness, asking twice with the answers in both orders and averaging, so a
judge's preference for the first (or second) position cancels out.

The judge is an OpenAI-compatible endpoint (URL, key, model and schema format from $IRIS_JUDGE_URL,
$IRIS_JUDGE_KEY, $IRIS_JUDGE_MODEL, $IRIS_JUDGE_FORMAT; the key is never printed) or a local GGUF file,
which answers under a JSON-schema grammar so even a small model returns parseable scores. A judge is only
as good as its model: a small local one (SmolLM2-135M, a 1B) returns well-formed scores that mostly
reflect position and length, not quality; use a strong endpoint for conclusions.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from statistics import mean
from typing import Any

from training.stages.run import StageError

CRITERIA = ("correctness", "completeness", "faithfulness")
# An enum, not minimum/maximum: llama-cpp-python's schema-to-grammar converter ignores integer bounds.
_SCORE = {"type": "integer", "enum": [1, 2, 3, 4, 5]}
SCHEMA = {
    "type": "object",
    "properties": {side: {"type": "object", "properties": {c: _SCORE for c in CRITERIA}, "required": list(CRITERIA)}
                   for side in ("answer_1", "answer_2")},
    "required": ["answer_1", "answer_2"],
}
INSTRUCTIONS = (
    "You are a strict grader. Score each answer to the question from 1 (bad) to 5 (excellent) for "
    "correctness, completeness and faithfulness (no invented facts). Reply with JSON only: "
    '{"answer_1": {"correctness": n, "completeness": n, "faithfulness": n}, "answer_2": {...}}'
)

Ask = Callable[[list[dict[str, str]]], str]


def _messages(question: str, first: str, second: str) -> list[dict[str, str]]:
    body = f"Question:\n{question}\n\nAnswer 1:\n{first}\n\nAnswer 2:\n{second}"
    return [{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": body}]


def _parse(text: str) -> dict[str, dict[str, int]] | None:
    try:
        start, end = text.index("{"), text.rindex("}") + 1
        data = json.loads(text[start:end])
        return {side: {c: int(data[side][c]) for c in CRITERIA} for side in ("answer_1", "answer_2")}
    except (ValueError, KeyError, TypeError):
        return None


def judge_pair(ask: Ask, question: str, base: str, tuned: str) -> dict[str, Any]:
    """Scores for base and fine-tune, averaged over both presentation orders (None where unparsable)."""
    forward = _parse(ask(_messages(question, base, tuned)))
    backward = _parse(ask(_messages(question, tuned, base)))
    votes = {"base": [], "finetune": []}
    if forward:
        votes["base"].append(forward["answer_1"])
        votes["finetune"].append(forward["answer_2"])
    if backward:
        votes["finetune"].append(backward["answer_1"])
        votes["base"].append(backward["answer_2"])
    return {who: ({c: mean(v[c] for v in vs) for c in CRITERIA} if vs else None) for who, vs in votes.items()} | {
        "orders_parsed": int(forward is not None) + int(backward is not None)}


FORMATS = {
    "json_schema": {"type": "json_schema", "json_schema": {"name": "scores", "schema": SCHEMA, "strict": True}},
    "json_object": {"type": "json_object", "schema": SCHEMA},  # llama.cpp's servers (llama-cpp-python, llama-server)
    "none": None,
}
"""How the score schema is sent ($IRIS_JUDGE_FORMAT): OpenAI-style `json_schema` (the default), llama.cpp's
`json_object` + `schema`, or not at all (answers are then parsed from free text, often unsuccessfully)."""


def endpoint_judge() -> Ask:
    """An OpenAI-compatible chat endpoint configured by environment variables (the key is never shown)."""
    url, model = os.environ.get("IRIS_JUDGE_URL"), os.environ.get("IRIS_JUDGE_MODEL", "gpt-4o-mini")
    key, fmt = os.environ.get("IRIS_JUDGE_KEY", ""), os.environ.get("IRIS_JUDGE_FORMAT", "json_schema")
    if not url:
        raise StageError("judge 'endpoint' needs $IRIS_JUDGE_URL (an OpenAI-compatible base URL ending in /v1)")
    if fmt not in FORMATS:
        raise StageError(f"$IRIS_JUDGE_FORMAT={fmt!r} is not one of {', '.join(FORMATS)}")
    endpoint = url.rstrip("/") + "/chat/completions"

    def ask(messages: list[dict[str, str]]) -> str:
        payload = {"model": model, "messages": messages, "temperature": 0, "max_tokens": 200}
        if FORMATS[fmt]:
            payload["response_format"] = FORMATS[fmt]
        request = urllib.request.Request(endpoint, data=json.dumps(payload).encode(), headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())["choices"][0]["message"]["content"] or ""
        except urllib.error.HTTPError as err:
            raise StageError(f"judge endpoint {endpoint} answered HTTP {err.code} ({err.reason}); check "
                             "$IRIS_JUDGE_KEY, $IRIS_JUDGE_MODEL and $IRIS_JUDGE_FORMAT") from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            raise StageError(f"judge endpoint {endpoint} is unreachable ({getattr(err, 'reason', err)})") from None

    return ask


def gguf_judge(path: str, n_ctx: int = 4096) -> Ask:
    """A local GGUF judge answering under the score schema's grammar, through the app's own engine."""
    from pathlib import Path

    from training.stages.answers import answer_all, eval_engine

    engine = eval_engine({"judge": path}, n_ctx, Path(path).parent)

    def ask(messages: list[dict[str, str]]) -> str:
        fmt = {"type": "json_object", "schema": SCHEMA}
        return answer_all(engine, "judge", [messages], 200, response_format=fmt)[0]["text"]

    return ask
