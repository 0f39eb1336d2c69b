"""The one place pages turn a visitor-caused serving error into a short `gr.Error` (the log keeps the detail)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import gradio as gr

from serving.context.notes import NotesError
from serving.errors import ServingError
from serving.study.inputs import StudyInputError
from serving.study.tools import StructuredOutputError

log = logging.getLogger(__name__)


@contextmanager
def shown_errors(what: str) -> Iterator[None]:
    """Inside: a ServingError (or a study tool's input/output error, or unusable notes) becomes a gr.Error,
    never a traceback."""
    try:
        yield
    except (StudyInputError, NotesError) as err:
        raise gr.Error(str(err)) from None
    except (StructuredOutputError, ServingError) as err:
        log.warning("%s: %s", what, err)
        raise gr.Error(err.user_message) from None
