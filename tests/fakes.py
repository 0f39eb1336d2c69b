"""A stand-in model for fast engine tests: byte-level tokens, a plain-text template, scripted answers.

It has the interface the engine uses of `serving.backends.llamacpp.LlamaCppModel` (prompt tokens, context
size, `submit` returning a `Job` fed by a thread, `alive`, `close`), so the engine's validation, trimming,
stop texts, leak guard, queue notes and stats are checked without weights; the real-model tests check
the same engine on llama.cpp."""

from __future__ import annotations

import threading
from pathlib import Path

from serving.backends.batched import Finished, Job, Piece, Queued
from serving.prompt import prompt_tokens
from serving.registry import parse_registry, load_registry


class _NoSampler:
    def close(self) -> None:
        pass


class FakeModel:
    def __init__(self, entry, path: Path, script: list[str], queued: int = 0, drafts: list[list[str]] = (),
                 free: int = 4):
        self.entry, self.path, self.n_ctx = entry, path, entry.context_length
        self.script, self.queued, self.drafts, self.free = script, queued, list(drafts), free
        self.closed, self.alive, self.prompts, self.jobs = False, True, [], []

    @staticmethod
    def render(messages: list[dict]) -> str:
        return "".join(f"<|{m['role']}|>{m['content']}\n" for m in messages) + "<|assistant|>"

    def tokenize(self, text: str, special: bool) -> list[int]:
        return list(text.encode("utf-8"))

    def prompt_tokens(self, messages: list[dict]) -> list[int]:
        return prompt_tokens(self.render, messages, self.tokenize)

    def submit(self, prompt, max_tokens, settings, response_format, conversation_id, cancel) -> Job:
        self.prompts.append(prompt)
        job = Job(prompt, max_tokens, _NoSampler(), frozenset(), cancel, conversation_id)
        script = self.script
        if self.drafts and max_tokens > 1:  # a one-token job is the engine's pre-read of a persona's prefix
            self.jobs.append((job, settings))
            script = self.drafts[(len(self.jobs) - 1) % len(self.drafts)]
        threading.Thread(target=self._answer, args=(job, script), daemon=True).start()
        return job

    def free_slots(self) -> int:
        return self.free

    def _answer(self, job: Job, script: list[str]) -> None:
        if self.queued:
            job.events.put(Queued(self.queued, 2.0))
        n = 0
        for piece in script:
            if job.cancel.wait(0.01):
                job.events.put(Finished("cancelled", len(job.prompt), n, 0))
                return
            if n == job.max_tokens:
                job.events.put(Finished("length", len(job.prompt), n, 0))
                return
            n += 1
            job.events.put(Piece(piece))
        job.events.put(Finished("stop", len(job.prompt), n, 0))

    def close(self) -> None:
        self.closed = True


class FakeLoader:
    """Loads `FakeModel`s answering `script` (each string one token), or with `drafts` the k-th answer the
    k-th script in turn (pre-reads apart; those answers are listed in the model's `jobs` with their settings);
    sizes every model at `size` bytes; `free` slots reported free."""

    def __init__(self, script: list[str], size: int = 1000, queued: int = 0, drafts: list[list[str]] = (),
                 free: int = 4):
        self.script, self.size_bytes, self.queued, self.loaded = script, size, queued, []
        self.drafts, self.free = drafts, free

    def size(self, entry, path, settings) -> int:
        return self.size_bytes

    def load(self, entry, path, settings) -> FakeModel:
        self.loaded.append(FakeModel(entry, path, self.script, self.queued, self.drafts, self.free))
        return self.loaded[-1]


def fake_registry(tmp_path: Path, context_length: int = 2048):
    """A registry with models "fake-a" and "fake-b" whose files exist (empty) so the resolver finds them."""
    models = []
    for name in ("fake-a", "fake-b"):
        (tmp_path / f"{name}.gguf").write_bytes(b"")
        models.append({"id": name, "display_name": name.upper(), "kind": "base", "context_length": context_length,
                       "source": {"local": {"path": str(tmp_path / f"{name}.gguf")}}})
    return parse_registry({"hub_owner": "test", "models": models}, load_registry().path)
