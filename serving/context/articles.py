"""Help-center articles: a folder of Markdown files, read and validated once, split into passages.

An article is `# Title` on its first line, an optional intro, then `## Section`s. Each section (and
the intro) becomes one passage that keeps its article's title, so a retrieved passage still says
where it comes from. Every problem (missing or empty folder, a file that is not UTF-8, has no title
or is over the size limit) raises `KnowledgeError` naming the file: at start-up, never at a
visitor's question. No retrieval here; see `retrieval`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

_HEADING = re.compile(r"^## +(.+?)\s*$", re.MULTILINE)


class KnowledgeError(ValueError):
    """A knowledge folder or article that cannot be used; the message names the file."""


class KnowledgeSettings(BaseModel):
    """Limits a knowledge folder is checked against when it is loaded."""

    model_config = ConfigDict(frozen=True)

    max_article_chars: int = Field(6000, ge=200, le=100_000)
    """Longest article accepted (characters); about 1,500 tokens, so one article always fits a prompt."""
    max_passages: int = Field(4, ge=1, le=50)
    """Most passages sent for one question when the whole knowledge does not fit (a small model
    answers better from a few relevant passages than from many)."""


class Passage(BaseModel):
    """One section of an article: the unit that is ranked and sent."""

    model_config = ConfigDict(frozen=True)

    title: str
    """Title of the article it comes from."""
    heading: str
    """Section heading (the article title for the intro)."""
    text: str
    """Section body, Markdown as written."""
    ref: str
    """Where it lives: `<folder>/<file>#<anchor>`."""

    @property
    def label(self) -> str:
        """Where it is from, as prompts and sources name it: "Title > Section" (the title alone for an intro)."""
        return self.title if self.heading == self.title else f"{self.title} > {self.heading}"

    def render(self) -> str:
        """The passage as it appears in a prompt: where it is from, then its text."""
        return f"[{self.label}] ({self.ref})\n{self.text}"


class Article(BaseModel):
    """One Markdown file, split into passages."""

    model_config = ConfigDict(frozen=True)

    path: Path
    """The file it was read from."""
    title: str
    """Its `# Title`."""
    passages: tuple[Passage, ...]
    """Intro (if any) and sections, in file order."""


def anchor(heading: str) -> str:
    """GitHub-style anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).strip().replace(" ", "-")


def _read(path: Path, settings: KnowledgeSettings) -> str:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise KnowledgeError(f"{path}: not UTF-8 ({err.reason} at byte {err.start}); save it as UTF-8") from None
    if len(text) > settings.max_article_chars:
        raise KnowledgeError(f"{path}: {len(text)} characters, over the limit of {settings.max_article_chars}; "
                             "split it into smaller articles")
    if not text.strip():
        raise KnowledgeError(f"{path}: empty article")
    return text


def sections(body: str) -> list[tuple[str | None, str]]:
    """(heading or None for the intro, text) of each non-empty part of an article body."""
    parts = _HEADING.split(body)
    pairs = [(None, parts[0])] + list(zip(parts[1::2], parts[2::2]))
    return [(heading, text.strip()) for heading, text in pairs if text.strip()]


def parse_article(path: Path, text: str) -> Article:
    """Split `text` (the content of `path`) into passages; the first line must be `# Title`."""
    first, _, body = text.partition("\n")
    if not first.startswith("# ") or not first[2:].strip():
        raise KnowledgeError(f"{path}: the first line must be the article title, as '# Title'")
    title = first[2:].strip()
    where = f"{path.parent.name}/{path.name}"
    passages = tuple(Passage(title=title, heading=heading or title, text=section,
                             ref=f"{where}#{anchor(heading or title)}") for heading, section in sections(body))
    if not passages:
        raise KnowledgeError(f"{path}: has a title but no text")
    return Article(path=path, title=title, passages=passages)


def load_articles(folder: Path, settings: KnowledgeSettings = KnowledgeSettings()) -> tuple[Article, ...]:
    """Every `*.md` article in `folder`, sorted by file name; raises `KnowledgeError` naming the bad file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise KnowledgeError(f"{folder}: knowledge folder not found")
    paths = sorted(folder.glob("*.md"))
    if not paths:
        raise KnowledgeError(f"{folder}: knowledge folder has no .md articles")
    return tuple(parse_article(path, _read(path, settings)) for path in paths)
