"""Quiz and drill marking: letters or radio labels, blanks count as wrong, short answers by feedback score."""

from __future__ import annotations

import pytest

from serving.study.schemas import Drill, Quiz
from serving.study.scoring import letter_of, score_drill, score_quiz


def _question(answer: str, n: int = 0) -> dict:
    return {"question": f"Q{n}?", "options": ["w", "x", "y", "z"], "answer": answer, "explanation": f"because {n}"}


QUIZ = Quiz(questions=[_question("A", 1), _question("C", 2), _question("D", 3)])


def test_all_correct():
    result = score_quiz(QUIZ, ["A", "C", "D"])
    assert (result.score, result.total, result.percent) == (3, 3, 100)
    assert result.summary() == "Score: 3/3 (100%)"


def test_radio_labels_blanks_and_wrong_answers():
    result = score_quiz(QUIZ, ["A. w", None, "b. x"])
    assert [m.correct for m in result.marks] == [True, False, False]
    assert result.summary() == "Score: 1/3 (33%)"
    blank, wrong = result.marks[1], result.marks[2]
    assert (blank.given, blank.expected, blank.explanation) == (None, "C. y", "because 2")
    assert (wrong.given, wrong.expected) == ("B. x", "D. z")


def test_fewer_or_more_choices_than_questions():
    assert score_quiz(QUIZ, ["A"]).score == 1
    assert score_quiz(QUIZ, ["A", "C", "D", "A"]).total == 3


@pytest.mark.parametrize(("choice", "letter"), [("C", "C"), (" d. text", "D"), ("", None), (None, None), ("E", None)])
def test_letter_of(choice, letter):
    assert letter_of(choice) == letter


DRILL = Drill(
    multiple_choice=[_question("B", 1), _question("A", 2)],
    true_false=[{"statement": "Water boils at 100 C at sea level.", "answer": True},
                {"statement": "The sun orbits the earth.", "answer": False,
                 "explanation": "It is the other way round."}],
    short_answer=[{"question": "What does DNA stand for?", "model_answer": "Deoxyribonucleic acid"}],
)


def test_drill_mixes_types_and_uses_feedback_scores():
    result = score_drill(DRILL, ["B", "C"], [True, None], ["deoxyribonucleic acid"], [8])
    assert [m.points for m in result.marks] == [1.0, 0.0, 1.0, 0.0, 0.8]
    assert result.summary() == "Score: 2.8/5 (56%)"
    assert result.marks[3].given is None and result.marks[3].expected == "False"
    assert result.marks[4].expected == "Deoxyribonucleic acid"


def test_blank_drill_scores_zero_without_errors():
    result = score_drill(DRILL, [], [], [], [])
    assert result.score == 0 and result.total == 5 and result.percent == 0
    assert score_drill(DRILL, [], [], [""], [9]).marks[4].points == 0.0  # a blank answer earns nothing
