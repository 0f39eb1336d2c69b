"""The study tools as services: validated request in, parsed result out, through `Engine` only.

Each tool looks up its persona (personas/study_*.yaml), builds messages with `prompts.py`, asks the
engine for JSON constrained by the tool's schema (`response_format`, compiled by llama.cpp into a
grammar) and parses the answer with the matching pydantic model. Grammar-constrained text can still be
unusable when the token limit cuts it off; that, and any other unparseable answer, becomes a
`StructuredOutputError` whose message tells the visitor what happened and to try again. With notes, the correct
answers of the quiz and the drill, the drill's model answers and the flashcards' backs are sentences of the notes
word for word (an enum in the schema, `grounded.statements`), so what the tools state as true is stated there.
No Gradio here; pages call these methods and show the messages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from serving.context.articles import Passage
from serving.context.notes import Notes
from serving.engine import ChatRequest, Engine, GenerationStats
from serving.errors import validation_message
from serving.generation import GenerationSettings
from serving.personas import PersonaBook, load_personas
from serving.study import planner, prompts, schemas
from serving.study.grounded import grounded_statements
from serving.study.inputs import (
    CheatSheetRequest, DrillRequest, FeedbackRequest, FlashcardsRequest, PlanRequest, QuizRequest, StudyInputError,
    parse,
)
from serving.study.schemas import Limits

log = logging.getLogger(__name__)
ParsedT = TypeVar("ParsedT", bound=BaseModel)

PERSONAS = {
    "chat": "study_tutor", "quiz": "study_quiz", "feedback": "study_feedback", "cheat_sheet": "study_cheatsheet",
    "planner": "study_planner", "flashcards": "study_flashcards", "drill": "study_drill",
}
"""Persona id of each tool."""
DRILL_MIX = (2, 2, 1)
"""Multiple-choice, true/false and short-answer questions in a drill."""
ASCII_CHARS_PER_TOKEN = 3
"""Pessimistic ASCII characters per prompt token (Llama 3 and the demo tokenizer average 4 to 5)."""
TEMPLATE_TOKENS = 48
"""Chat-template tokens around the messages, rounded up."""
NOTES_SHARE = 0.3
"""Share of the model's context that passages from the student's notes may take."""


def estimate_tokens(text: str) -> int:
    """An upper estimate of `text`'s tokens: ASCII at 3 characters a token, anything else at 1."""
    n_ascii = sum(ch.isascii() for ch in text)
    return -(-n_ascii // ASCII_CHARS_PER_TOKEN) + (len(text) - n_ascii)


def estimate_prompt_tokens(messages: list[dict]) -> int:
    """An upper estimate of the prompt's tokens (`estimate_tokens` of the messages, plus the template's)."""
    return estimate_tokens("".join(m["content"] for m in messages)) + TEMPLATE_TOKENS


class StructuredOutputError(Exception):
    """The model's answer could not be parsed; `user_message` says why and suggests a retry."""

    def __init__(self, user_message: str, detail: str = ""):
        super().__init__(detail or user_message)
        self.user_message = user_message


def parse_structured(text: str, stats: GenerationStats | None, model: type[ParsedT]) -> ParsedT:
    """Parse the engine's answer into `model`, or raise StructuredOutputError with retry advice."""
    finish = stats.finish_reason if stats else "stop"
    if finish == "cancelled":
        raise StructuredOutputError("Generation was stopped before it finished. Press the button again to retry.")
    try:
        return model.model_validate(json.loads(text, strict=False))  # grammar strings may hold raw newlines
    except (json.JSONDecodeError, ValidationError) as err:
        problem = validation_message(err) if isinstance(err, ValidationError) else str(err)
        if finish == "length":
            raise StructuredOutputError(
                f"The answer was cut off at the token limit ({stats.n_tokens} tokens) before it was complete. "
                "Ask for fewer items or a shorter topic, or press the button again to retry.",
                f"truncated {model.__name__}: {problem}") from None
        raise StructuredOutputError(
            "The model's answer did not have the expected shape. Press the button again to retry, "
            "or pick another model.", f"unusable {model.__name__}: {problem}; text={text[:300]!r}") from None


class StudyTools:
    """One method per structured study tool; every method takes the model id picked on the page.

    (The tutor chat needs no service of its own: the page uses the shared chat component, `pages/chat.py`.)
    """

    def __init__(self, engine: Engine, personas: PersonaBook | None = None):
        self.engine = engine
        self.personas = personas or load_personas()

    def settings(self, model_id: str, tool: str, **overrides: object) -> GenerationSettings:
        """The model's defaults, then the tool persona's, then `overrides` (None values ignored)."""
        base = self.engine.registry.get(model_id).generation
        return self.personas.get(PERSONAS[tool]).settings(base).merged(**overrides)

    def _system(self, tool: str) -> str:
        return self.personas.get(PERSONAS[tool]).system_prompt

    def _budget(self, model_id: str, messages: list[dict], settings: GenerationSettings) -> int:
        """Tokens the answer may take: the tool's max_new_tokens, or what the context leaves after the prompt.

        The prompt is over-estimated (`estimate_prompt_tokens`), so the engine, which counts exactly,
        leaves at least this much room.
        """
        room = self.engine.registry.get(model_id).context_length - estimate_prompt_tokens(messages)
        return min(settings.max_new_tokens, room)

    def passages(self, model_id: str, notes: Notes | None, query: str) -> list[Passage]:
        """The passages of `notes` for `query` within `NOTES_SHARE` of the model's context ([] without notes)."""
        if notes is None:
            return []
        budget = int(self.engine.registry.get(model_id).context_length * NOTES_SHARE)
        return notes.retrieve(query, budget, estimate_tokens)

    def tutor_notes(self, model_id: str, notes: Notes | None, messages: list[dict]) -> tuple[Passage, ...]:
        """The passages of `notes` for the tutor chat's latest question (`ChatRequest.notes`; () without notes)."""
        asked = [m["content"] for m in messages if m.get("role") == "user"]
        return tuple(self.passages(model_id, notes, asked[-1])) if asked else ()

    def _structured(self, model_id: str, tool: str, messages: list[dict], build: Callable[[Limits], dict],
                    model: type[ParsedT], overrides: dict | None) -> ParsedT:
        settings = self.settings(model_id, tool, **(overrides or {}))
        budget = self._budget(model_id, messages, settings)
        schema = schemas.fit(build, budget) if budget > 0 else None
        if schema is None:
            raise StudyInputError(
                f"This request does not fit the context window of {self.engine.registry.get(model_id).display_name}: "
                "ask for fewer items, shorten the text, or pick a larger model.")
        settings = settings.merged(max_new_tokens=min(budget, schemas.max_chars(schema)))
        request = ChatRequest(model_id, messages, settings, response_format={"type": "json_object", "schema": schema})
        text, stats = self.engine.complete(request)
        log.info("%s on %s: %d tokens, finish=%s", tool, model_id, stats.n_tokens if stats else 0,
                 stats.finish_reason if stats else "?")
        return parse_structured(text, stats, model)

    def quiz(self, model_id: str, request: QuizRequest, overrides: dict | None = None,
             passages: Sequence[Passage] = ()) -> schemas.Quiz:
        answers = grounded_statements(passages)
        messages = prompts.quiz_messages(self._system("quiz"), request, passages, keyed=bool(answers))
        if answers:  # each correct answer is a sentence of the notes, word for word
            build = partial(schemas.grounded_quiz_schema, request.n_questions, answers)
            return self._structured(model_id, "quiz", messages, build, schemas.GroundedQuiz, overrides).quiz()
        return self._structured(model_id, "quiz", messages, partial(schemas.quiz_schema, request.n_questions),
                                schemas.Quiz, overrides)

    def feedback(self, model_id: str, request: FeedbackRequest, overrides: dict | None = None) -> schemas.Feedback:
        messages = prompts.feedback_messages(self._system("feedback"), request)
        return self._structured(model_id, "feedback", messages, schemas.feedback_schema, schemas.Feedback,
                                overrides)

    def cheat_sheet(self, model_id: str, request: CheatSheetRequest, overrides: dict | None = None,
                    passages: Sequence[Passage] = ()) -> schemas.CheatSheet:
        messages = prompts.cheat_sheet_messages(self._system("cheat_sheet"), request, passages)
        return self._structured(model_id, "cheat_sheet", messages, schemas.cheat_sheet_schema,
                                schemas.CheatSheet, overrides)

    def flashcards(self, model_id: str, request: FlashcardsRequest, overrides: dict | None = None,
                   passages: Sequence[Passage] = ()) -> schemas.Flashcards:
        backs = grounded_statements(passages)
        messages = prompts.flashcards_messages(self._system("flashcards"), request, passages, keyed=bool(backs))
        build = partial(schemas.flashcards_schema, request.n_cards, backs=backs)
        return self._structured(model_id, "flashcards", messages, build, schemas.Flashcards, overrides)

    def plan(self, model_id: str, request: PlanRequest, overrides: dict | None = None) -> list[planner.Session]:
        """Dates from `planner.schedule`, tasks from the model, merged by `planner.fill`."""
        days = planner.schedule(request)
        messages = prompts.plan_messages(self._system("planner"), request.topics, request.n_days,
                                         request.hours_per_day)
        build = partial(schemas.plan_content_schema, len(request.topics))
        content = self._structured(model_id, "planner", messages, build,
                                   schemas.PlanContent, overrides)
        return planner.fill(days, content, request.topics)

    def drill(self, model_id: str, request: DrillRequest, overrides: dict | None = None,
              passages: Sequence[Passage] = ()) -> schemas.Drill:
        answers = grounded_statements(passages)
        messages = prompts.drill_messages(self._system("drill"), request, *DRILL_MIX, passages, keyed=bool(answers))
        if answers:  # multiple-choice answers and model answers are sentences of the notes, word for word
            build = partial(schemas.drill_schema, *DRILL_MIX, answers=answers)
            return self._structured(model_id, "drill", messages, build, schemas.GroundedDrill, overrides).drill()
        return self._structured(model_id, "drill", messages, partial(schemas.drill_schema, *DRILL_MIX), schemas.Drill,
                                overrides)

    def mark_short_answers(self, model_id: str, drill: schemas.Drill, answers: list[str | None],
                           overrides: dict | None = None) -> list[int | None]:
        """Feedback scores (0-10) of the student's short answers; None for a blank answer.

        Every answer is checked before the first one is marked, so a too-long third answer costs no model time.
        """
        requests = [_short_answer(i, question, answer)
                    for i, (question, answer) in enumerate(zip(drill.short_answer, answers), 1)]
        return [None if r is None else self.feedback(model_id, r, overrides).score for r in requests]


def _short_answer(number: int, question: schemas.ShortAnswer, answer: str | None) -> FeedbackRequest | None:
    """The feedback request marking one short answer (None when blank), or StudyInputError naming it."""
    if not (answer or "").strip():
        return None
    try:
        return parse(FeedbackRequest, question=f"{question.question}\n(Model answer: {question.model_answer})",
                     answer=answer)
    except StudyInputError as err:
        raise StudyInputError(f"Short answer #{number}: {err}") from None
