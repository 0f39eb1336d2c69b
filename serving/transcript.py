"""Conversations a visitor keeps: their shape, edit-and-branch, Markdown/JSON export and a checked import.

Pure (no Gradio, no model): the chat pages keep a `Library` of `Conversation`s in the visitor's browser and
call these functions; the server stores nothing. An imported file is untrusted input: `load_transcript`
bounds its size, then its shape (pydantic), then its messages with the engine's own limits
(`serving.conversation.validate_messages`), and every refusal is a `TranscriptError` a visitor can read.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from serving.config import ServingSettings
from serving.context.check import AnswerCheck
from serving.context.render import Source
from serving.conversation import validate_messages
from serving.errors import InvalidInput, validation_message

FORMAT = "iris-conversation"
VERSION = 1
MAX_FILE_BYTES = 2_000_000
"""Largest import: a full history (100,000 characters by default), its branches and stats fit with room."""
MAX_BRANCHES = 10
"""Alternatives kept per conversation; the oldest goes first."""
MAX_CONVERSATIONS = 30
"""Conversations kept in one browser (localStorage holds a few MB); the least recently used goes first."""
MAX_TITLE = 80
MAX_SOURCES = 100
"""Sources kept with one answer (the whole help center of a persona is about 75 passages)."""
STOPPED_MARK = " [stopped]"
"""What the chat shows after an answer the visitor stopped. Never part of the text the model reads back: a small
model would take it for its own words and repeat it."""
UNBACKED = "Not found in its sources"
"""How an answer's unbacked figures are introduced, in the chat and in an export."""
_SHORT = 60  # characters of a message quoted in a title or a branch label


class TranscriptError(InvalidInput):
    """An imported conversation file that cannot be used; `user_message` says why."""


class AnswerStats(BaseModel):
    """How one answer was made (the engine's GenerationStats, without the server's file path)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model_id: str = Field(max_length=200)
    quant: str = Field("", max_length=40)
    sha256: str | None = Field(None, max_length=64)
    n_prompt_tokens: int = Field(0, ge=0)
    n_tokens: int = Field(0, ge=0)
    ttft_s: float = Field(0.0, ge=0)
    tokens_per_s: float = Field(0.0, ge=0)
    finish_reason: str = Field("stop", max_length=20)
    dropped_turns: int = Field(0, ge=0)

    @classmethod
    def of(cls, stats) -> "AnswerStats":
        """From a `serving.engine.GenerationStats`."""
        return cls.model_validate(asdict(stats))


class Message(BaseModel):
    """One visible turn; an answer carries the stats of the run that wrote it and the sources it was given."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str
    stats: AnswerStats | None = None
    sources: list[Source] = Field(default_factory=list, max_length=MAX_SOURCES)
    check: AnswerCheck | None = None
    """Its figures read against its sources (`serving.context.check`); None when it had no sources."""

    @model_validator(mode="after")
    def _unmarked(self) -> "Message":
        """A stopped answer kept by an older version carries the mark in its text: it leaves the text here."""
        if self.stopped() and self.content.endswith(STOPPED_MARK):
            self.content = self.content[: -len(STOPPED_MARK)]
        return self

    def stopped(self) -> bool:
        """An answer the visitor stopped before it ended."""
        return self.role == "assistant" and self.stats is not None and self.stats.finish_reason == "cancelled"

    def chat(self) -> dict:
        """The {"role", "content"} dict the engine takes: the text as it was written."""
        return {"role": self.role, "content": self.content}

    def shown(self) -> dict:
        """The {"role", "content"} dict the Chatbot shows: a stopped answer says so."""
        return {"role": self.role, "content": self.content + (STOPPED_MARK if self.stopped() else "")}


class Branch(BaseModel):
    """Another version of the conversation, kept when a message was edited (or an answer regenerated)."""

    model_config = ConfigDict(extra="forbid")

    at: int = Field(ge=0)
    """Index of the first message where this version differs from the one it was branched from."""
    messages: list[Message]

    def label(self) -> str:
        changed = self.messages[self.at].content if self.at < len(self.messages) else "(nothing)"
        return f"Message {self.at + 1} was: {_short(changed)} ({len(self.messages)} messages)"


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=200)
    sha256: str | None = Field(None, max_length=64)


class Conversation(BaseModel):
    """A conversation as kept in the browser and written to a JSON export."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[0-9a-f]{32}$")
    title: str = Field("New conversation", max_length=MAX_TITLE)
    persona: str = Field(max_length=100)
    model: ModelRef
    settings: dict[str, float | int | None] = Field(default_factory=dict, max_length=20)
    messages: list[Message] = Field(default_factory=list)
    branches: list[Branch] = Field(default_factory=list, max_length=MAX_BRANCHES)

    def chat(self) -> list[dict]:
        """The messages as the engine takes them."""
        return [m.chat() for m in self.messages]

    def shown(self) -> list[dict]:
        """The messages as the Chatbot shows them (`Message.shown`)."""
        return [m.shown() for m in self.messages]

    def last_stats(self) -> AnswerStats | None:
        return next((m.stats for m in reversed(self.messages) if m.stats), None)

    def cut_off(self) -> bool:
        """True when the last answer stopped at the token limit (it can be continued)."""
        last = self.messages[-1] if self.messages else None
        return bool(last and last.role == "assistant" and last.stats and last.stats.finish_reason == "length")

    def titled(self) -> "Conversation":
        """Titled after its first question while it still has the default title."""
        first = next((m.content for m in self.messages if m.role == "user"), "")
        if self.title != "New conversation" or not first.strip():
            return self
        return self.model_copy(update={"title": _short(first)})


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _SHORT else line[: _SHORT - 1] + "…"


# ---- edit and branch ------------------------------------------------------------------------
def edit(conversation: Conversation, index: int, text: str) -> Conversation:
    """The conversation up to user message `index`, which now says `text`; the old version becomes a branch."""
    if not 0 <= index < len(conversation.messages) or conversation.messages[index].role != "user":
        raise InvalidInput(f"Message {index + 1} is not one of your messages; only your own messages can be edited.")
    kept = Branch(at=index, messages=conversation.messages)
    messages = [*conversation.messages[:index], Message(role="user", content=text)]
    return conversation.model_copy(update={"messages": messages,
                                           "branches": [*conversation.branches, kept][-MAX_BRANCHES:]})


def switch_branch(conversation: Conversation, number: int) -> Conversation:
    """Make branch `number` the conversation; the version shown until now becomes that branch."""
    if not 0 <= number < len(conversation.branches):
        raise InvalidInput("That version of the conversation no longer exists; pick another one.")
    branch = conversation.branches[number]
    branches = list(conversation.branches)
    branches[number] = Branch(at=branch.at, messages=conversation.messages)
    return conversation.model_copy(update={"messages": branch.messages, "branches": branches})


# ---- the visitor's conversations ------------------------------------------------------------
class Library(BaseModel):
    """Every conversation one browser keeps, most recently used first, and which one is open."""

    model_config = ConfigDict(extra="ignore")

    active: str | None = None
    conversations: list[Conversation] = Field(default_factory=list)

    @classmethod
    def from_stored(cls, value: object) -> "Library":
        """The library a browser sent back; anything unreadable (an older shape, a bad entry) is left out."""
        if not isinstance(value, dict):
            return cls()
        kept = []
        for raw in value.get("conversations") or []:
            try:
                kept.append(Conversation.model_validate(raw))
            except ValidationError:
                continue
        active = value.get("active") if isinstance(value.get("active"), str) else None
        return cls(active=active, conversations=kept[:MAX_CONVERSATIONS])

    def stored(self) -> dict:
        return self.model_dump(mode="json")

    def current(self) -> Conversation | None:
        return self.find(self.active) if self.active else None

    def find(self, conversation_id: str | None) -> Conversation | None:
        return next((c for c in self.conversations if c.id == conversation_id), None)

    def put(self, conversation: Conversation) -> "Library":
        """This conversation saved, first in the list, and open."""
        others = [c for c in self.conversations if c.id != conversation.id]
        return Library(active=conversation.id, conversations=[conversation, *others][:MAX_CONVERSATIONS])

    def remove(self, conversation_id: str) -> "Library":
        """Without that conversation (none is open when it was the open one)."""
        others = [c for c in self.conversations if c.id != conversation_id]
        return Library(active=self.active if self.active != conversation_id else None, conversations=others)

    def choices(self) -> list[tuple[str, str]]:
        return [(c.title, c.id) for c in self.conversations]


# ---- export ---------------------------------------------------------------------------------
def to_json(conversation: Conversation) -> str:
    """The JSON export: format marker, persona, model id and sha256, settings, messages with per-answer stats."""
    return json.dumps({"format": FORMAT, "version": VERSION, **conversation.model_dump(mode="json")},
                      ensure_ascii=False, indent=2)


def to_markdown(conversation: Conversation, persona_name: str | None = None) -> str:
    """A readable export: a header with persona, model and settings, then each turn (answers with their stats)."""
    model = conversation.model
    lines = [f"# {conversation.title}", "",
             f"- Persona: {persona_name or conversation.persona} (`{conversation.persona}`)",
             f"- Model: `{model.id}`" + (f" (sha256 `{model.sha256}`)" if model.sha256 else "")]
    if conversation.settings:
        lines.append("- Settings: " + ", ".join(f"{k} {v}" for k, v in conversation.settings.items()))
    for message in conversation.messages:
        lines += ["", f"## {'You' if message.role == 'user' else 'Assistant'}", "", message.shown()["content"]]
        if message.stats:
            s = message.stats
            lines += ["", f"_{s.model_id} · {s.n_tokens} tokens · {s.tokens_per_s:.1f} tokens/s · "
                          f"finished: {s.finish_reason}_"]
        if message.check and message.check.unbacked:
            lines += ["", f"{UNBACKED}: " + ", ".join(message.check.unbacked)]
        if message.sources:
            lines += ["", "Sources: " + "; ".join(f"{src.title} (`{src.ref}`)" for src in message.sources)]
    return "\n".join(lines) + "\n"


# ---- import ---------------------------------------------------------------------------------
def load_transcript(data: bytes | str, limits: ServingSettings) -> Conversation:
    """A JSON export read back, checked like any visitor input, with a fresh id; or a TranscriptError."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_FILE_BYTES:
        raise TranscriptError(f"The file is {len(raw) / 1e6:.1f} MB; a conversation file may be at most "
                              f"{MAX_FILE_BYTES / 1e6:.0f} MB.")
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TranscriptError(f"The file is not JSON ({err}); import a file exported here as JSON.") from None
    if not isinstance(parsed, dict) or parsed.get("format") != FORMAT:
        raise TranscriptError(f'This is not an Iris conversation: the file needs "format": "{FORMAT}"; '
                              "import a file exported here as JSON.")
    if parsed.get("version") != VERSION:
        raise TranscriptError(f"This conversation file has version {parsed.get('version')!r}; "
                              f"this server reads version {VERSION}.")
    body = {k: v for k, v in parsed.items() if k not in ("format", "version", "id")}
    try:
        conversation = Conversation.model_validate(body)
    except ValidationError as err:
        raise TranscriptError("Invalid conversation file: " + validation_message(err)) from None
    for version in (conversation.messages, *(b.messages for b in conversation.branches)):
        check_messages(version, limits)
    return conversation


def check_messages(messages: list[Message], limits: ServingSettings) -> None:
    """The engine's message limits on a kept conversation (which may end with an answer), or a TranscriptError."""
    if not messages:
        raise TranscriptError("The conversation has no messages; there is nothing to continue.")
    chat = [m.chat() for m in messages]
    last_user = max((i for i, m in enumerate(chat) if m["role"] == "user"), default=None)
    if last_user is None:
        raise TranscriptError("The conversation has no message from you; there is nothing to continue.")
    # The engine's own check up to the last question, then the count, size and lengths of the whole list.
    most = limits.max_history_messages - 1  # the page adds the persona's system prompt
    problem = validate_messages(chat[: last_user + 1], limits.max_message_chars, most, limits.max_history_chars)
    if problem is None and len(chat) > most:
        problem = f"the conversation has {len(chat)} messages; the limit is {most}"
    if problem is None and sum(len(m["content"]) for m in chat) > limits.max_history_chars:
        problem = f"the conversation is longer than {limits.max_history_chars} characters"
    long = next((i for i, m in enumerate(chat) if m["role"] == "user" and len(m["content"]) > limits.max_message_chars),
                None)
    if problem is None and long is not None:
        problem = (f"message #{long + 1} is {len(chat[long]['content'])} characters long; "
                   f"the limit is {limits.max_message_chars}")
    if problem:
        raise TranscriptError(f"Invalid conversation file: {problem}.")
