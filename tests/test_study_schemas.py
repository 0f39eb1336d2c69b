"""Study schemas, prompts, personas and answer parsing: no model needed (llama.cpp compiles the grammars)."""

from __future__ import annotations

import json
import re

import pytest
from llama_cpp.llama_grammar import LlamaGrammar, json_schema_to_gbnf

from serving.engine import GenerationStats
from serving.personas import load_personas
from serving.study import prompts, schemas
from serving.study.inputs import CheatSheetRequest, FeedbackRequest, QuizRequest
from serving.study.tools import PERSONAS, StructuredOutputError, parse_structured

SCHEMAS = {
    "quiz": schemas.quiz_schema(10), "feedback": schemas.feedback_schema(), "sheet": schemas.cheat_sheet_schema(),
    "cards": schemas.flashcards_schema(20), "plan": schemas.plan_content_schema(12),
    "drill": schemas.drill_schema(2, 2, 1),
}


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_schema_compiles_to_a_llama_cpp_grammar(name):
    gbnf = json_schema_to_gbnf(json.dumps(SCHEMAS[name]))
    assert "char ::=" not in gbnf  # only pattern-bounded strings: no free-form JSON string rule
    assert r'[^"\\|\x00-\x1f]' in gbnf
    assert LlamaGrammar.from_json_schema(json.dumps(SCHEMAS[name]), verbose=False) is not None


def test_text_pattern_forbids_escapes_control_characters_and_template_tokens():
    pattern = re.compile(schemas._text(10)["pattern"])
    assert pattern.match("Mitochondria") is None  # 12 characters: over the limit
    assert pattern.match("Cells, 2x.")
    for bad in ["", " leading", 'a "quote"', "back\\slash", "line\nbreak", "<|eot_id|>"]:
        assert pattern.match(bad) is None, bad


def test_max_chars_counts_the_longest_grammar_text():
    assert schemas.max_chars(schemas._text(5)) == len('"abcde" ')
    assert schemas.max_chars({"type": "string", "enum": ["A", "B"]}) == len('"A"')
    assert schemas.max_chars(schemas._list(schemas._text(1), 0, 2)) == len('[ "a" , "b" ] ')
    assert schemas.max_chars(schemas._object(x={"type": "boolean"}, y={"type": "integer", "enum": [7, 10]})) == (
        len('{ "x" : false , "y" : 10} '))  # enum values take no trailing space


def test_fit_shrinks_limits_to_the_budget_or_gives_up():
    generous = schemas.fit(lambda limits: schemas.quiz_schema(2, limits), 100_000)
    assert generous == schemas.quiz_schema(2)
    tight = schemas.fit(lambda limits: schemas.quiz_schema(3, limits), 800)
    assert schemas.max_chars(tight) <= 800 < schemas.max_chars(schemas.quiz_schema(3))
    question = tight["properties"]["questions"]["items"]["properties"]["question"]
    assert 16 <= question["maxLength"] < schemas.DEFAULT_LIMITS.long
    assert schemas.fit(lambda limits: schemas.quiz_schema(10, limits), 500) is None


def test_quiz_schema_fixes_the_count_and_bounds_strings():
    question = schemas.quiz_schema(3)["properties"]["questions"]
    assert (question["minItems"], question["maxItems"]) == (3, 3)
    item = question["items"]["properties"]
    assert item["answer"]["enum"] == ["A", "B", "C", "D"]
    assert (item["options"]["minItems"], item["options"]["maxItems"]) == (4, 4)
    assert item["question"]["maxLength"] == schemas.DEFAULT_LIMITS.long


def test_parsed_models_accept_grammar_shaped_json():
    quiz = schemas.Quiz.model_validate_json(json.dumps({"questions": [
        {"question": " What is 2+2? ", "options": ["3", "4", "5", "6"], "answer": "B", "explanation": "Sum."}]}))
    assert quiz.questions[0].question == "What is 2+2?" and quiz.questions[0].option("B") == "4"
    with pytest.raises(ValueError):
        schemas.Quiz.model_validate({"questions": [{"question": "q", "options": ["a", "b"], "answer": "A"}]})
    with pytest.raises(ValueError):
        schemas.Feedback.model_validate({"score": 11})


def _stats(finish: str, n_tokens: int = 40) -> GenerationStats:
    return GenerationStats("demo-base", "Q4_K_M", "local", None, None, 10, n_tokens, 0.1, 50.0, finish, 0)


def test_parse_structured_accepts_raw_newlines_inside_strings():
    text = '{"title": "Cells", "sections": [{"heading": "Parts", "points": ["line one\nline two"]}]}'
    sheet = parse_structured(text, _stats("stop"), schemas.CheatSheet)
    assert sheet.sections[0].points == ("line one\nline two",)


def test_truncated_output_says_cut_off_and_to_retry():
    with pytest.raises(StructuredOutputError) as info:
        parse_structured('{"questions": [{"question": "What is', _stats("length", 96), schemas.Quiz)
    assert info.value.user_message.startswith("The answer was cut off at the token limit (96 tokens)")
    assert "press the button again to retry" in info.value.user_message


def test_wrong_shape_and_cancelled_output():
    with pytest.raises(StructuredOutputError) as info:
        parse_structured('{"cards": []}', _stats("stop"), schemas.Flashcards)
    assert info.value.user_message.startswith("The model's answer did not have the expected shape")
    assert "retry" in info.value.user_message
    with pytest.raises(StructuredOutputError) as info:
        parse_structured("", _stats("cancelled"), schemas.Flashcards)
    assert info.value.user_message.startswith("Generation was stopped")


def test_every_tool_has_a_study_persona_with_sensible_defaults():
    book = load_personas()
    personas = {tool: book.get(pid) for tool, pid in PERSONAS.items()}
    assert all(p.group == "study" for p in personas.values())
    factual = ("quiz", "feedback", "cheat_sheet", "flashcards", "drill", "planner")
    assert all(personas[t].generation["temperature"] < personas["chat"].generation["temperature"] for t in factual)
    assert personas["cheat_sheet"].generation["max_new_tokens"] > personas["feedback"].generation["max_new_tokens"]
    assert personas["planner"].generation["max_new_tokens"] > personas["chat"].generation["max_new_tokens"]


def test_prompts_are_plain_strings():
    quiz = prompts.quiz_messages("SYS", QuizRequest(topic="the water cycle", n_questions=2, difficulty="easy"))
    assert quiz == [{"role": "system", "content": "SYS"}, {"role": "user", "content": (
        "Write 2 easy multiple-choice questions about the water cycle. Each has four options, exactly one correct; "
        "give its letter (A-D) as the answer and a one-sentence explanation. Reply in JSON.")}]
    feedback = prompts.feedback_messages("SYS", FeedbackRequest(question="Why?", answer="Because."))
    assert feedback[1]["content"].startswith("Question: Why?\nStudent's answer: Because.\n\n")
    sheet = prompts.cheat_sheet_messages("SYS", CheatSheetRequest(topic="ions", notes="Na+ loses one electron."))
    assert sheet[1]["content"].endswith("based on these notes:\nNa+ loses one electron.\n\nReply in JSON.")
    plan = prompts.plan_messages("SYS", ("Algebra", "Geometry"), 6, 1.5)
    assert "6 days and 1.5 hours a day" in plan[1]["content"] and "1. Algebra\n2. Geometry" in plan[1]["content"]
