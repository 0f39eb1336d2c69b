"""Prompt sets of `python -m training compare`: YAML files in `prompt_sets/`, one set per file, every prompt with
its category.

Data, not code: a set is added by adding a file, and its name is the file's stem. This module reads and validates
the files into typed objects (an unknown key, an empty prompt, a prompt twice in one set stop the load, naming the
file); it knows nothing of models.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from serving.errors import validation_message

SETS_DIR = Path(__file__).resolve().parent / "prompt_sets"
ALL = "all"
"""The set name that selects every set, in name order."""


class PromptSetError(ValueError):
    """A prompt set file that cannot be used, or a set name that does not exist; the message says which."""


class Prompt(BaseModel):
    """One prompt, sent as the only (user) turn of a conversation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    """What the prompt exercises (`greeting`, `code`, `translation`, ...): a lowercase slug."""
    prompt: str = Field(min_length=1)
    """The user's message."""


class PromptSet(BaseModel):
    """A named, ordered list of prompts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    """The file's stem: what `--set` names."""
    description: str = Field(min_length=1)
    """One line on what the set covers (the report's heading)."""
    prompts: list[Prompt] = Field(min_length=1)
    """The prompts, in the order they are asked and reported."""

    @model_validator(mode="after")
    def _distinct(self) -> "PromptSet":
        if self.name == ALL:
            raise ValueError(f"{ALL!r} selects every set; name the file otherwise")
        texts = [p.prompt for p in self.prompts]
        twice = sorted({t for t in texts if texts.count(t) > 1})
        if twice:
            raise ValueError(f"prompts asked twice: {twice}")
        return self

    def categories(self) -> list[str]:
        """The categories, each once, in prompt order."""
        return list(dict.fromkeys(p.category for p in self.prompts))


def _load(path: Path) -> PromptSet:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "name" in data:
        raise PromptSetError(f"{path.name}: top level must be a mapping with 'description' and 'prompts' "
                             "(the set's name is the file's stem)")
    try:
        return PromptSet(name=path.stem, **data)
    except ValidationError as err:
        raise PromptSetError(validation_message(err, f"{path.name}:")) from None


def load_prompt_sets(folder: Path = SETS_DIR) -> dict[str, PromptSet]:
    """Every set in `folder` (`*.yaml`) by name, in name order."""
    return {s.name: s for s in map(_load, sorted(folder.glob("*.yaml")))}


def set_names(folder: Path = SETS_DIR) -> list[str]:
    """The names `--set` accepts: each file's stem, then `all` (read without parsing the files)."""
    return [*sorted(p.stem for p in folder.glob("*.yaml")), ALL]


def select(sets: dict[str, PromptSet], name: str) -> list[PromptSet]:
    """The set called `name`, or every set for `all`."""
    if name == ALL:
        return list(sets.values())
    if name not in sets:
        raise PromptSetError(f"unknown prompt set {name!r}; valid: {', '.join([*sets, ALL])}")
    return [sets[name]]
