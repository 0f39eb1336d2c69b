"""The remote backend: any OpenAI-compatible chat endpoint answers instead of a local GGUF.

One streamed `POST {base_url}/chat/completions` per answer (server-sent events). The API key comes
from the environment variable the registry entry names and is sent only as a bearer header: it is
never logged or shown. Every failure (unreachable, refused key, timeout, HTTP error, a JSON schema
the server cannot honour) becomes a `ServingError` whose visitor message names the model and what to
do; the log gets the detail. Produces the same `Piece` / `Finished` items as the llama.cpp backend,
so the engine treats both alike. Knows nothing of Gradio or of the pool.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator

import httpx

from serving.backends.batched import Finished, Piece
from serving.errors import InvalidInput, ModelUnavailable
from serving.generation import GenerationSettings
from serving.registry import ModelEntry, RemoteSource

log = logging.getLogger(__name__)


def _response_format(source: RemoteSource, entry: ModelEntry, fmt: dict | None) -> dict | None:
    """The request's JSON constraint in the server's dialect, or a clear refusal."""
    if fmt is None:
        return None
    schema = fmt.get("schema")
    if source.json_format == "none":
        raise InvalidInput(f"{entry.display_name} cannot constrain answers to JSON; choose a local model for this.")
    if source.json_format == "json_object" or schema is None:
        return {"type": "json_object", **({"schema": schema} if schema is not None else {})}
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}


class RemoteModel:
    """Chat answers from a remote OpenAI-compatible server for one registry entry."""

    def __init__(self, entry: ModelEntry):
        self.entry, self.source = entry, entry.source.remote

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.source.api_key_env, "") if self.source.api_key_env else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _body(self, messages: list[dict], settings: GenerationSettings, stop: tuple[str, ...],
              response_format: dict | None) -> dict:
        body = {"model": self.source.model, "messages": messages, "stream": True,
                "max_tokens": settings.max_new_tokens, "temperature": settings.temperature, "top_p": settings.top_p,
                "stream_options": {"include_usage": True}}
        if settings.seed is not None:
            body["seed"] = settings.seed
        if settings.ignore_eos:  # llama-server's and vLLM's name; an OpenAI server refuses it, as it should
            body["ignore_eos"] = True
        if stop:
            body["stop"] = list(stop)
        fmt = _response_format(self.source, self.entry, response_format)
        if fmt is not None:
            body["response_format"] = fmt
        return body

    def stream(self, messages: list[dict], settings: GenerationSettings, stop: tuple[str, ...],
               response_format: dict | None, cancel: threading.Event) -> Iterator[Piece | Finished]:
        """Pieces of the answer as the server sends them, then `Finished` (token counts from the server's usage
        when it reports them, else the number of streamed chunks)."""
        body = self._body(messages, settings, stop, response_format)
        timeout = httpx.Timeout(self.source.read_timeout_s, connect=self.source.connect_timeout_s)
        url = self.source.base_url.rstrip("/") + "/chat/completions"
        try:
            with httpx.stream("POST", url, json=body, headers=self._headers(), timeout=timeout) as response:
                self._check(response, response_format is not None)
                yield from self._events(response, cancel)
        except httpx.TimeoutException as err:
            raise self._unavailable(f"did not answer within {self.source.read_timeout_s:g} s", err) from None
        except httpx.TransportError as err:
            raise self._unavailable("cannot be reached right now", err) from None

    def _events(self, response: httpx.Response, cancel: threading.Event) -> Iterator[Piece | Finished]:
        n_prompt, n_chunks, usage, reason = 0, 0, None, "stop"
        for line in response.iter_lines():
            if cancel.is_set():
                reason = "cancelled"
                break
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            try:
                chunk = json.loads(line[5:])
            except json.JSONDecodeError:
                raise self._unavailable("sent a reply Iris could not read", line[:200]) from None
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    n_chunks += 1
                    yield Piece(text)
                if choice.get("finish_reason"):
                    reason = "length" if choice["finish_reason"] == "length" else "stop"
        if usage:
            n_prompt, n_chunks = usage.get("prompt_tokens", 0), usage.get("completion_tokens", n_chunks)
        yield Finished(reason, n_prompt, n_chunks, 0)

    def _check(self, response: httpx.Response, wants_json: bool) -> None:
        if response.status_code < 400:
            return
        detail = response.read().decode("utf-8", "replace")[:300]
        if response.status_code in (401, 403):
            raise self._unavailable("refused this server's API key (the Space owner must check "
                                    f"{self.source.api_key_env or 'the key'})", detail, response.status_code)
        if response.status_code in (400, 422) and wants_json:
            raise InvalidInput(f"{self.entry.display_name} could not take the JSON format of this request "
                               f"(HTTP {response.status_code}); choose a local model for this.",
                               f"{self.entry.id}: {detail}")
        raise self._unavailable(f"answered with an error (HTTP {response.status_code})", detail, response.status_code)

    def _unavailable(self, what: str, detail: object, status: int | None = None) -> ModelUnavailable:
        log.warning("%s: remote %s: %s %s", self.entry.id, self.source.base_url, status or "", detail)
        return ModelUnavailable(f"{self.entry.display_name} {what}; please try again later or choose another model.",
                                f"{self.entry.id}: {self.source.base_url}: {status or ''} {detail}")
