"""Compare-page settings, read from the environment (`IRIS_VOTES_DB`, `IRIS_ARENA_*`)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from serving.arena.votes import votes_db_path


class ArenaSettings(BaseModel):
    """Limits and storage of the side-by-side and blind-arena views."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    votes_db: Path = Field(default_factory=votes_db_path)
    """SQLite file of blind-arena votes ($IRIS_VOTES_DB; point it at persistent storage on a Space)."""
    max_prompt_chars: int = Field(2000, ge=1, le=100_000)
    """Longest prompt the page accepts ($IRIS_ARENA_MAX_PROMPT_CHARS)."""
    max_system_chars: int = Field(4000, ge=0, le=100_000)
    """Longest system prompt the page accepts ($IRIS_ARENA_MAX_SYSTEM_CHARS)."""
    votes_per_session: int = Field(30, ge=1)
    """Blind-arena votes one browser session may cast per `vote_window_s` ($IRIS_ARENA_VOTES_PER_SESSION)."""
    votes_per_ip: int = Field(60, ge=1)
    """Blind-arena votes one IP address may cast per `vote_window_s` ($IRIS_ARENA_VOTES_PER_IP)."""
    vote_window_s: float = Field(3600.0, gt=0)
    """The rate limits' sliding window, in seconds ($IRIS_ARENA_VOTE_WINDOW_S)."""
    trust_forwarded_for: bool = Field(default_factory=lambda: bool(os.environ.get("SPACE_ID")))
    """Limit votes by the first X-Forwarded-For address (behind a trusted proxy: on by default in a Space, whose
    proxy sets it; the socket's address would be the proxy's for every visitor) ($IRIS_ARENA_TRUST_FORWARDED_FOR)."""
    export_token: SecretStr | None = None
    """Owner's token for the full vote export, prompts and answers ($IRIS_ARENA_EXPORT_TOKEN); unset: public only."""
    bootstrap_rounds: int = Field(200, ge=10, le=10_000)
    """Resamples behind each leaderboard confidence interval ($IRIS_ARENA_BOOTSTRAP_ROUNDS)."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "ArenaSettings":
        environ = os.environ if environ is None else environ
        values = {name: environ[f"IRIS_ARENA_{name.upper()}"] for name in cls.model_fields
                  if name != "votes_db" and environ.get(f"IRIS_ARENA_{name.upper()}")}
        if environ.get("IRIS_VOTES_DB"):
            values["votes_db"] = environ["IRIS_VOTES_DB"]
        return cls(**values)
