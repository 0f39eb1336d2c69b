"""Errors the serving layer raises; each carries a `user_message` that is safe to show a visitor.

The message says what was wrong and what to do; details for the log go in the exception text.
"""

from __future__ import annotations


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
