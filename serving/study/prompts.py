"""Prompts of the study tools: pure functions from a persona's system prompt and a request to chat messages.

The persona (personas/study_*.yaml) says who the model is; these functions say what to produce this
time. The JSON shape itself is enforced by the grammar built from `schemas.py`, so the prompt only names
the fields briefly (which helps real models fill them well) and stays short enough for the 1k-token
context of the demo models. Tests compare the strings.
"""

from __future__ import annotations

from collections.abc import Sequence

from serving.context.articles import Passage
from serving.context.retrieval import passages_text
from serving.study.inputs import CheatSheetRequest, DrillRequest, FeedbackRequest, FlashcardsRequest, QuizRequest

Messages = list[dict[str, str]]
NOTES_HEADER = "The student's notes (use only what they state; say nothing they do not support):"


def _chat(system_prompt: str, user: str, passages: Sequence[Passage] = ()) -> Messages:
    """The two messages; passages retrieved from the student's notes go first in the user turn, as plain text."""
    if passages:
        user = f"{NOTES_HEADER}\n\n{passages_text(passages)}\n\n{user}"
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def quiz_messages(system_prompt: str, request: QuizRequest, passages: Sequence[Passage] = (),
                  keyed: bool = False) -> Messages:
    """`keyed`: the schema makes each answer a sentence of the notes (`schemas.grounded_quiz_schema`)."""
    if keyed:
        user = (
            f"Write {request.n_questions} {request.difficulty} multiple-choice questions about {request.topic}, "
            "each answered by one sentence of the notes: the question, that sentence copied as the answer, three "
            "short wrong options and a one-sentence explanation. Reply in JSON."
        )
    else:
        user = (
            f"Write {request.n_questions} {request.difficulty} multiple-choice questions about {request.topic}. "
            "Each has four options, exactly one correct; give its letter (A-D) as the answer and a "
            "one-sentence explanation. Reply in JSON."
        )
    return _chat(system_prompt, user, passages)


def feedback_messages(system_prompt: str, request: FeedbackRequest) -> Messages:
    user = (
        f"Question: {request.question}\n"
        f"Student's answer: {request.answer}\n\n"
        "Mark the answer: list what is correct, what is missing or wrong, give a score from 0 to 10 "
        "and a short summary. Reply in JSON."
    )
    return _chat(system_prompt, user)


def cheat_sheet_messages(system_prompt: str, request: CheatSheetRequest, passages: Sequence[Passage] = ()) -> Messages:
    user = f"Make a compact cheat sheet about {request.topic}: a title and a few sections of short bullet points"
    if request.notes:
        user += f", based on these notes:\n{request.notes}\n\nReply in JSON."
    else:
        user += ". Reply in JSON."
    return _chat(system_prompt, user, passages)


def flashcards_messages(system_prompt: str, request: FlashcardsRequest, passages: Sequence[Passage] = (),
                        keyed: bool = False) -> Messages:
    """`keyed`: the schema makes each back a sentence of the notes (`schemas.flashcards_schema`'s `backs`)."""
    user = (
        f"Make {request.n_cards} flashcards about {request.topic}. The front is a short question or term, "
        + ("the back the sentence of the notes that answers it, copied. " if keyed else
           "the back its answer in one or two sentences. ")
        + "Reply in JSON."
    )
    return _chat(system_prompt, user, passages)


def plan_messages(system_prompt: str, topics: tuple[str, ...], n_days: int, hours_per_day: float) -> Messages:
    listed = "\n".join(f"{i}. {topic}" for i, topic in enumerate(topics, start=1))
    user = (
        f"A student has {n_days} days and {hours_per_day:g} hours a day before an exam on these topics:\n"
        f"{listed}\n\n"
        "For each topic, in this order, list 2 to 4 concrete study tasks, easiest first. Reply in JSON."
    )
    return _chat(system_prompt, user)


def drill_messages(system_prompt: str, request: DrillRequest, n_choice: int, n_true_false: int,
                   n_short: int, passages: Sequence[Passage] = (), keyed: bool = False) -> Messages:
    """`keyed`: the schema makes the multiple-choice answers and model answers sentences of the notes."""
    choice = ("the question, one sentence of the notes copied as the answer, three short wrong options, explanation"
              if keyed else "four options, answer letter A-D, explanation")
    model_answer = "whose model answer is a sentence of the notes, copied" if keyed else "with a model answer"
    user = (
        f"Write a short {request.difficulty} mock exam about {request.topic}: {n_choice} multiple-choice "
        f"questions ({choice}), {n_true_false} true/false statements "
        f"(answer true or false, explanation) and {n_short} short-answer questions {model_answer}. "
        "Reply in JSON."
    )
    return _chat(system_prompt, user, passages)
