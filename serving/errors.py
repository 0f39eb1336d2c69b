"""Errors the serving layer raises; each carries a `user_message` that is safe to show a visitor.

The message says what was wrong and what to do; details for the log go in the exception text.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError


class ServingError(Exception):
    """Base of every error a visitor can trigger through the engine."""

    def __init__(self, user_message: str, detail: str | None = None):
        super().__init__(detail or user_message)
        self.user_message = user_message


class UnknownModel(ServingError):
    """The model id is not in the registry."""


class ModelUnavailable(ServingError):
    """The model is registered but its file cannot be resolved, verified or loaded."""


class Busy(ServingError):
    """Too many requests are waiting for the model; try again shortly."""


class InputTooLong(ServingError):
    """A single message (with the system prompt) does not fit the model's context."""


class InvalidInput(ServingError):
    """A malformed request: empty message, bad roles, out-of-range settings."""


_DATE_ERRORS = ("date_from_datetime_parsing", "date_parsing", "date_type")


def _problem(error: dict, labels: Mapping[str, str] | None) -> str:
    """One pydantic error as "<field> <problem>": a config author gets the dotted path ("field 'a.b': ..."),
    a visitor's form (`labels` given) the field's label ("Number of questions is 12: ...")."""
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in _DATE_ERRORS:
        message = "is not a date: use YYYY-MM-DD, for example 2026-06-15"
    if labels is None:
        field = ".".join(str(p) for p in error["loc"])
        return f"field '{field or '(whole)'}': {message}"
    field = ".".join(str(p) for p in error["loc"] if not isinstance(p, int))
    if not field:
        return message[:1].upper() + message[1:]
    return f"{labels.get(field, field.replace('_', ' ').capitalize())} {message}"


def validation_message(err: ValidationError, what: str = "", labels: Mapping[str, str] | None = None,
                       sep: str = "; ") -> str:
    """Every problem of a pydantic `err` in one message: `what` was invalid (a file, an entry; may be empty),
    each field by name and what is wrong with it (the validators' messages say what to do).

    `labels` switches to a visitor's wording: fields by their form label, positions in lists left out.
    """
    prefix = f"{what} " if what else ""
    return sep.join(prefix + _problem(e, labels) for e in err.errors())
