"""A learner's own notes (pasted text or an uploaded `.md`/`.txt` file): checked, split into passages, retrieved.

Everything a visitor can hand in is checked here, once, before anything is kept: over `MAX_NOTES_BYTES`,
empty or whitespace only, binary (NUL bytes or mostly control characters), or not UTF-8 each raise
`NotesError` with the limit or reason and what to do. Accepted notes are split like help-center articles
(`articles.sections`: `## ` headings, the first `# ` line as the title when there is one), then each
section into paragraph-sized passages, so plain `.txt` without headings works too. Retrieval is the same
`retrieval.Knowledge` (SQLite FTS5 BM25, in memory) built for the request. Pure of Gradio and llama.cpp.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from serving.context.articles import Article, Passage, anchor, sections
from serving.context.retrieval import CountTokens, Knowledge

MAX_NOTES_BYTES = 200_000
"""Largest notes accepted (UTF-8 bytes): about 50 pages of text."""
MAX_PASSAGE_CHARS = 700
"""Longest passage built from paragraphs (a longer single paragraph stays whole): small enough that a
few of them fit the 1k-token context of the demo models next to the answer."""
MAX_PASSAGES = 4
"""Most passages sent for one request."""
NOTES_FOLDER = "notes"
_MAX_CONTROL_SHARE = 0.1  # more control characters than this (besides tab/newline/CR) is not text
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PARAGRAPH = re.compile(r"\n\s*\n")


class NotesError(ValueError):
    """Notes that cannot be used; `str(err)` names the limit or reason and what to do, safe to show."""


class Notes(BaseModel):
    """Checked notes, split into passages; small, so a page may keep it in a visitor's session."""

    model_config = ConfigDict(frozen=True)

    name: str
    """Where they came from: the file name, or "pasted notes"."""
    title: str
    """The first `# ` line, or `name`."""
    n_bytes: int
    """Size in UTF-8 bytes."""
    passages: tuple[Passage, ...]
    """Sections and paragraphs, in order."""

    def summary(self) -> str:
        """One line for the page: title, size and passage count."""
        count = len(self.passages)
        return (f"{self.title} ({self.name}): {self.n_bytes / 1000:.1f} KB, "
                f"{count} passage{'s' if count != 1 else ''}")

    def retrieve(self, query: str, budget_tokens: int, count_tokens: CountTokens) -> list[Passage]:
        """All passages if they fit `budget_tokens`, else the best BM25 matches of `query` that fit."""
        article = Article(path=Path(self.name), title=self.title, passages=self.passages)
        return Knowledge([article], MAX_PASSAGES).retrieve(query, budget_tokens, count_tokens)


def check_notes(data: bytes | str, name: str) -> str:
    """The text of `data` (an upload's bytes or pasted text), or `NotesError` saying what is wrong."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_NOTES_BYTES:
        raise NotesError(f"{name} is {len(raw) / 1000:.0f} KB, over the {MAX_NOTES_BYTES // 1000} KB limit for notes: "
                         "upload only the chapter you are studying.")
    if b"\x00" in raw:
        raise NotesError(f"{name} is a binary file (it holds NUL bytes), not text: upload notes as .md or .txt.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise NotesError(f"{name} is not UTF-8 text ({err.reason} at byte {err.start}): "
                         "save it as UTF-8 .md or .txt and upload it again.") from None
    if not text.strip():
        raise NotesError(f"{name} is empty: paste or upload notes with some text.")
    if len(_CONTROL.findall(text)) > _MAX_CONTROL_SHARE * len(text):
        raise NotesError(f"{name} is mostly control characters, not text: upload notes as .md or .txt.")
    return text


def paragraphs(text: str, limit: int = MAX_PASSAGE_CHARS) -> list[str]:
    """`text`'s paragraphs joined in order into chunks of at most `limit` characters (a longer paragraph alone)."""
    chunks: list[str] = []
    for part in (p.strip() for p in _PARAGRAPH.split(text)):
        if not part:
            continue
        if chunks and len(chunks[-1]) + 2 + len(part) <= limit:
            chunks[-1] += "\n\n" + part
        else:
            chunks.append(part)
    return chunks


def split_notes(text: str, name: str) -> Notes:
    """Checked `text` as passages: `## ` sections (the intro too), each cut into paragraph chunks."""
    first, _, rest = text.lstrip().partition("\n")
    titled = first.startswith("# ") and first[2:].strip()
    title, body = (first[2:].strip(), rest) if titled else (name, text)
    passages = []
    for heading, section in sections(body):
        chunks = paragraphs(section)
        for i, chunk in enumerate(chunks, 1):
            where = anchor(heading or title) + (f"-{i}" if len(chunks) > 1 else "")
            passages.append(Passage(title=title, heading=heading or title, text=chunk,
                                    ref=f"{NOTES_FOLDER}/{name}#{where}"))
    if not passages:
        raise NotesError(f"{name} has a title but no text: add the notes under it.")
    return Notes(name=name, title=title, n_bytes=len(text.encode("utf-8")), passages=tuple(passages))


def load_notes(data: bytes | str, name: str = "pasted notes") -> Notes:
    """Check and split notes in one step: what a page calls for a paste or an upload."""
    return split_notes(check_notes(data, name), name)
