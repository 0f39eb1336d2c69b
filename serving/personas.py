"""Personas: one YAML file per persona in `personas/`, parsed into typed, validated objects.

A persona is data (a system prompt, example prompts, default generation settings, and for support
personas the knowledge folder they answer from) used by pages and the context layer; this module only
reads and validates the files (a knowledge folder must exist; its articles are checked when
`serving.context` loads them at start-up). Duplicate ids are refused at load,
and errors name the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from serving.context.drafts import MAX_DRAFTS
from serving.errors import validation_message
from serving.generation import GenerationSettings

PERSONAS_DIR = Path(__file__).resolve().parent.parent / "personas"
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")


class PersonaError(ValueError):
    """A persona file that cannot be used; the message names the file and field."""


class Persona(BaseModel):
    """A system prompt with its UI text and default generation settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    """Stable id used by the API (a-z, 0-9, '_' or '-')."""
    name: str = Field(min_length=1)
    """Name shown in the picker."""
    group: str = Field(min_length=1)
    """Which page uses it: "support", "study", ..."""
    description: str = ""
    """One line shown under the picker."""
    system_prompt: str = Field(min_length=1)
    """System message sent first in every conversation."""
    example_prompts: list[str] = Field(default_factory=list)
    """Quick-action prompts shown as buttons."""
    generation: dict[str, Any] = Field(default_factory=dict)
    """Overrides of `GenerationSettings` keys on top of the model's defaults."""
    position: int = 100
    """Place in its group's picker (lower first, then by name)."""
    welcome: str = Field("", max_length=500)
    """Greeting shown in an empty chat with this persona (Markdown; never sent to the model)."""
    knowledge: str | None = None
    """Folder of Markdown help-center articles this persona answers from, relative to the personas folder."""
    order_lookup: bool = False
    """Look up the order numbers a visitor names and give the records (or "not found") to the model."""
    drafts: int = Field(1, ge=1, le=MAX_DRAFTS)
    """Drafts written at once for each answer with sources, the one its sources back best shown
    (`serving.context.drafts`); 1: the answer streams as it is written."""

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(f"id {value!r} must be 2-64 chars of a-z, 0-9, '_' or '-'")
        return value

    @field_validator("knowledge")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ValueError(f"{value!r} must be a folder inside the personas folder, for example 'knowledge/shop'")
        return value

    @field_validator("generation")
    @classmethod
    def _settings_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        GenerationSettings(**value)  # raises with the bad key / range
        return value

    def settings(self, base: GenerationSettings) -> GenerationSettings:
        """`base` (usually the model's defaults) with this persona's overrides applied."""
        return base.merged(**self.generation)

    def knowledge_dir(self, personas_dir: Path = PERSONAS_DIR) -> Path | None:
        """The knowledge folder, resolved against `personas_dir`; None if the persona has none."""
        return None if self.knowledge is None else Path(personas_dir) / self.knowledge


class PersonaBook(BaseModel):
    """All personas, looked up by id or group."""

    model_config = ConfigDict(frozen=True)

    personas: dict[str, Persona]
    """Personas by id, sorted by file name."""

    def get(self, persona_id: str) -> Persona:
        try:
            return self.personas[persona_id]
        except KeyError:
            raise KeyError(f"unknown persona id {persona_id!r}; known: {', '.join(self.personas)}") from None

    def group(self, group: str) -> list[Persona]:
        """Personas of `group` in picker order."""
        return sorted((p for p in self.personas.values() if p.group == group), key=lambda p: (p.position, p.name))


def load_persona(path: Path) -> Persona:
    """Read and validate one persona file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise PersonaError(f"{path.name}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise PersonaError(f"{path.name}: top level must be a mapping of persona fields")
    try:
        persona = Persona(**data)
    except ValidationError as err:
        raise PersonaError(validation_message(err, f"{path.name}:")) from None
    folder = persona.knowledge_dir(path.parent)
    if folder is not None and not folder.is_dir():
        raise PersonaError(f"{path.name}: field 'knowledge': folder {folder} not found")
    return persona


def load_personas(folder: Path = PERSONAS_DIR) -> PersonaBook:
    """Every `*.yaml` persona in `folder`; a duplicate id names both files."""
    personas: dict[str, Persona] = {}
    files: dict[str, str] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        persona = load_persona(path)
        if persona.id in personas:
            raise PersonaError(f"{path.name}: duplicate persona id {persona.id!r} (also in {files[persona.id]})")
        personas[persona.id], files[persona.id] = persona, path.name
    return PersonaBook(personas=personas)
