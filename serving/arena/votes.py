"""Blind-arena votes, persisted in SQLite: one committed transaction per vote.

The database file comes from `$IRIS_VOTES_DB` (a Space points it at persistent
storage), else `votes.db` in the app's folder. The connection runs in WAL mode with
`synchronous=FULL`, so a vote whose `record()` has returned survives the process being
killed. `round_id` is UNIQUE: a round can be voted on once. This module stores and
exports votes; turning them into ratings is `ratings.py`'s job.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, get_args

from serving.arena.ratings import Battle

VOTES_DB_ENV = "IRIS_VOTES_DB"
DEFAULT_VOTES_DB = Path(__file__).resolve().parents[2] / "votes.db"

Outcome = Literal["a", "b", "tie", "both_bad"]
OUTCOMES: tuple[str, ...] = get_args(Outcome)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS votes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    round_id TEXT NOT NULL UNIQUE,
    model_a TEXT NOT NULL,
    model_b TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('a', 'b', 'tie', 'both_bad')),
    prompt TEXT NOT NULL,
    answer_a TEXT NOT NULL,
    answer_b TEXT NOT NULL,
    settings TEXT NOT NULL,
    created_at TEXT NOT NULL,
    anonymous INTEGER NOT NULL DEFAULT 1,
    CHECK (model_a <> model_b)
)
"""
# Files made before the column existed: every vote in them was cast with the names hidden.
_MIGRATIONS = {"anonymous": "ALTER TABLE votes ADD COLUMN anonymous INTEGER NOT NULL DEFAULT 1"}


class VoteError(ValueError):
    """A vote that cannot be stored; the message says why."""


class DuplicateVote(VoteError):
    """The round already has a vote."""


@dataclass(frozen=True)
class Vote:
    """One visitor's verdict on one blind round."""

    round_id: str
    model_a: str
    model_b: str
    outcome: Outcome
    prompt: str
    answer_a: str
    answer_b: str
    settings: dict
    """Generation settings both sides ran with (GenerationSettings.model_dump())."""
    created_at: str = ""
    """UTC ISO-8601 timestamp; filled in by `VoteStore.record` when empty."""
    anonymous: bool = True
    """False when an answer named a model or its maker: stored, but not counted in the ratings."""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise VoteError(f"vote outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}")
        if self.model_a == self.model_b:
            raise VoteError(f"a vote needs two different models, got {self.model_a!r} twice")
        if not self.round_id:
            raise VoteError("a vote needs a round id")

    @property
    def battle(self) -> Battle:
        return Battle(self.model_a, self.model_b, self.outcome)


_COLUMNS = tuple(f.name for f in fields(Vote))


def votes_db_path() -> Path:
    """Where votes are stored: `$IRIS_VOTES_DB`, else `votes.db` next to app.py."""
    return Path(os.environ.get(VOTES_DB_ENV) or DEFAULT_VOTES_DB)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _row_to_vote(row: sqlite3.Row) -> Vote:
    data = dict(zip(_COLUMNS, row))
    return Vote(**{**data, "settings": json.loads(data["settings"]), "anonymous": bool(data["anonymous"])})


class VoteStore:
    """Votes in one SQLite file; each call opens its own short-lived connection (thread-safe)."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path else votes_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            present = {row[1] for row in conn.execute("PRAGMA table_info(votes)")}
            for column, sql in _MIGRATIONS.items():
                if column not in present:
                    conn.execute(sql)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a vote is exactly one transaction.
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=FULL")
            yield conn
        finally:
            conn.close()

    def record(self, vote: Vote) -> Vote:
        """Store `vote` in one committed transaction; raises DuplicateVote if its round has one."""
        vote = vote if vote.created_at else Vote(**{**asdict(vote), "created_at": _now()})
        values = [getattr(vote, c) for c in _COLUMNS]
        values[_COLUMNS.index("settings")] = json.dumps(vote.settings, sort_keys=True)
        sql = f"INSERT INTO votes ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        with self._connect() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(sql, values)
                conn.execute("COMMIT")
            except sqlite3.IntegrityError:
                conn.execute("ROLLBACK")
                raise DuplicateVote(f"round {vote.round_id} already has a vote; start a new round") from None
        return vote

    def votes(self) -> list[Vote]:
        """All votes, oldest first."""
        with self._connect() as conn:
            rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM votes ORDER BY id").fetchall()
        return [_row_to_vote(r) for r in rows]

    def has_vote(self, round_id: str) -> bool:
        with self._connect() as conn:
            return conn.execute("SELECT 1 FROM votes WHERE round_id = ?", (round_id,)).fetchone() is not None

    def battles(self) -> list[Battle]:
        """The battles the ratings count: anonymous votes only, oldest first."""
        return [v.battle for v in self.votes() if v.anonymous]

    def count(self) -> int:
        with self._connect() as conn:
            return conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0]


def to_jsonl(votes: list[Vote]) -> str:
    """One JSON object per line, settings kept as a nested object."""
    return "".join(json.dumps(asdict(v), ensure_ascii=False) + "\n" for v in votes)


def from_jsonl(text: str) -> list[Vote]:
    return [Vote(**json.loads(line)) for line in text.splitlines() if line.strip()]


PUBLIC_COLUMNS = ("model_a", "model_b", "outcome", "date")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def public_records(votes: list[Vote]) -> list[dict]:
    """What the leaderboard is computed from, and nothing a visitor wrote: counted votes' pairs, outcomes, days."""
    return [{"model_a": v.model_a, "model_b": v.model_b, "outcome": v.outcome, "date": v.created_at[:10]}
            for v in votes if v.anonymous]


def public_csv(votes: list[Vote]) -> str:
    return _csv_text(public_records(votes), PUBLIC_COLUMNS)


def public_jsonl(votes: list[Vote]) -> str:
    return "".join(json.dumps(r) + "\n" for r in public_records(votes))


def to_csv(votes: list[Vote]) -> str:
    """A header row then one row per vote; `settings` is a JSON string column; cells are formula-escaped."""
    return _csv_text([{**asdict(v), "settings": json.dumps(v.settings, sort_keys=True)} for v in votes], _COLUMNS)


def _csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: escape_cell(v) for k, v in row.items()})
    return out.getvalue()


def escape_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula (=, +, -, @, tab, CR) gets a leading "'" (as does "'")."""
    return "'" + value if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def _unescape_cell(value: str) -> str:
    return value[1:] if value.startswith("'") else value


def from_csv(text: str) -> list[Vote]:
    rows = [{k: _unescape_cell(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text))]
    return [Vote(**{**row, "settings": json.loads(row["settings"]), "anonymous": row["anonymous"] == "True"})
            for row in rows]
