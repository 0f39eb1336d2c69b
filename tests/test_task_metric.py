"""The support task metric: facts come from templates filled from the articles, `states` accepts a fact however
it is written, `invented_facts` finds exactly the numbers, prices, durations, dates and order ids an answer was
not given, the unknown-order and uncovered matchers read what answers say, and the eval's report pieces."""

import json

import pytest

from training.demo.datagen import reply_facts
from training.stages.task_eval import TaskOptions, pick, task_lines, task_sets, task_summary
from training.stages.task_metric import (cell_score, claims, follows_style, grounding, invented_facts,
                                         says_not_covered, style_score,
                                         says_not_found, score, states)


def test_facts_are_the_fact_slots_of_the_template_and_the_given_order_id():
    template = "Done. Order {order} is refunded to your {payment} within {cancel_refund_days} business days."
    values = {"cancel_refund_days": "3 to 5", "return_window": "30 days"}
    assert reply_facts(template, values, "BL-12345") == ["3 to 5", "BL-12345"]
    assert reply_facts(template, values) == ["3 to 5"]
    assert reply_facts("It should arrive in {days} business days.", values) == []


def test_states_accepts_equivalent_writings_only():
    assert states("Refunds take 3-5 business days.", "3 to 5")
    assert states("Order #12345 is cancelled", "BL-12345") and states("bl-12345 shipped", "BL-12345")
    assert not states("Order BL-123456 is cancelled", "BL-12345")
    assert states("Shipping costs $4.99.", "$4.99") and not states("Shipping costs $4.", "$4.99")
    assert not states("within 30 minutes", "30 days")
    assert states("It arrives on June 3rd.", "Wednesday 3 June 2026") and not states("June 4", "Wednesday 3 June 2026")
    assert states("That was $129 in total", "$129.00") and not states("That was $12.90", "$129.00")
    assert states("open from 9am", "9 am") and not states("open from 9 pm", "9 am")


def test_score_counts_recall_all_facts_and_order_echo():
    result = score([("Returns within 30 days; order BL-11111.", ["30 days", "BL-11111"]),
                    ("No idea.", ["$50", "BL-22222"]), ("ignored", [])])
    assert result == {"answers": 2, "facts": 4, "fact_recall": 0.5, "all_facts": 0.5, "order_id_echo": 0.5,
                      "order_ids": 2}


# ---------------------------------------------------------------- invented facts

def test_claims_read_each_kind_once_and_by_meaning():
    found = dict(claims("Order #12345 shipped Wednesday 3 June 2026 with UPS (tracking 1Z0LDR71), $342.00 paid; "
                        "returns within 30 days, refunds in 3-5 business days, order before 2 pm for 10% off, "
                        "a one-year warranty, Bluetooth 5.0."))
    assert set(found) == {("order", "12345"), ("date", "06-03"), ("number", "1z0ldr71"), ("money", "342.00"),
                          ("duration:day", "30"), ("duration:day", "3"), ("duration:day", "5"), ("time", "14:00"),
                          ("percent", "10"), ("duration:year", "1"), ("number", "5.0")}
    assert [c for c, _ in claims("Delivered June 3, 2026")] == [("date", "06-03")]  # not also 3 and 2026
    assert claims("It arrives on Monday, five wrong passwords lock it") == []  # weekday and a count: no fact


@pytest.mark.parametrize(("answer", "given", "invented"), [
    ("Order BL-12345 arrives June 3rd and cost $342.", "Order BL-12345: expected delivery Wednesday 3 June 2026; "
     "total $342.00.", []),
    ("Refunds take 3-5 days.", "the refund is sent 3 to 5 business days after", []),
    ("It can take 5 days.", "within 3 to 5 business days", []),                      # one end of a given range
    ("Your reset link works for 30 days.", "The link works for 30 minutes.", ["30 days"]),
    ("Order BL-54321 shipped.", "No order found with id BL-12345.", ["bl-54321"]),  # an id it was not given
    ("Express costs $14.99.", "Express shipping costs $12.99.", ["$14.99"]),
    ("Your parcel comes June 4.", "expected delivery Wednesday 3 June 2026", ["june 4"]),
    ("Call us from 8 am.", "open from 9 am to 5 pm", ["8 am"]),
    ("Tracking number 168861197524.", "tracking number 168861197524", []),
    ("Your 2 Nimbus 14 laptops ship soon.", "My order of 2 x Nimbus 14 laptop", []),  # numbers from the question
    ("You get 15% off.", "Students get 10% off", ["15%"]),
    ("We will refund it within a week.", "within 7 days", []),                       # no number, no claim
])
def test_invented_facts_are_claims_the_given_text_does_not_state(answer, given, invented):
    assert invented_facts(answer, given) == invented


# ---------------------------------------------------------------- what an answer says

@pytest.mark.parametrize("answer", [
    "I can't find an order with the number BL-55555.", "I couldn’t find order BL-55555 in our system.",
    "I was unable to locate that order.", "There is no order with that number.", "There is no such order.",
    "Sorry, BL-55555 is not in our records.", "That order number doesn't seem to exist.",
    "I do not see an order BL-55555.", "Order BL-55555 was not found.", "We have no record of order BL-55555.",
])
def test_says_not_found_reads_every_way_of_saying_it(answer):
    assert says_not_found(answer)


@pytest.mark.parametrize("answer", [
    "You can find your order number in the confirmation email.", "Order BL-55555 shipped on Monday with UPS.",
    "Your parcel did not arrive? Check with your neighbours.", "No order number is needed to return it.",
    "I found it: BL-55555 is on its way.",
])
def test_says_not_found_ignores_answers_that_do_not_say_it(answer):
    assert not says_not_found(answer)


@pytest.mark.parametrize("answer", [
    "Our help center does not cover that.", "That is not something our help center covers.",
    "I don't have information about that.", "I can hand you over to a human agent.",
    "Would you like me to connect you with an agent?", "I'm sorry, that isn't covered in the articles I have.",
    "I don't know, but a colleague can check: I will transfer you.", "The articles don't mention gift wrapping.",
])
def test_says_not_covered_reads_refusals_and_handovers(answer):
    assert says_not_covered(answer)


@pytest.mark.parametrize("answer", [
    "Contact support with the order number and we refund it.", "Returns are free within 30 days.",
    "Our help center covers returns: you have 30 days.", "Yes, we do gift wrapping for $3.",
])
def test_says_not_covered_ignores_answers(answer):
    assert not says_not_covered(answer)


def test_a_covered_answer_that_mentions_a_human_agent_is_not_a_refusal():
    answer = "Hold the power button for 10 seconds. If you don't know your model, a human agent can help."
    assert says_not_covered(answer) and not says_not_covered(answer, handover=False)
    assert says_not_covered("Our help center does not cover that.", handover=False)
    rows = [{"kind": "policy", "facts": ["10 seconds"]}]
    assert grounding([answer], rows, ["10 seconds"])["covered_refused"] == 0.0


def test_grounding_counts_each_kind_against_its_own_rows():
    rows = [{"kind": "policy", "facts": ["30 days"]}, {"kind": "unknown_order"}, {"kind": "unknown_order"},
            {"kind": "uncovered"}, {"kind": "order", "facts": ["FedEx"]}]
    answers = ["Returns within 45 days.", "I can't find that order.", "It shipped on June 3.",
               "A human agent can help with that.", "It went with FedEx; I don't know more."]
    given = ["within 30 days", "No order found with id BL-1", "No order found", "nothing", "carrier FedEx"]
    result = grounding(answers, rows, given)
    assert result == {"questions": 5, "invented_answers": 0.4, "invented_claims": 2, "claims": 2,
                      "unknown_orders": 2, "unknown_not_found": 0.5, "uncovered": 1, "uncovered_said": 1.0,
                      "covered": 2, "covered_refused": 0.5}
    assert cell_score(answers, rows, given)["fact_recall"] == 0.5  # "45 days" is not "30 days"


# ---------------------------------------------------------------- the eval report's pieces

def test_pick_takes_every_kind_in_turn():
    rows = [{"kind": "policy", "n": i} for i in range(5)] + [{"kind": "uncovered", "n": 9}, {"kind": "order", "n": 7}]
    assert [(r["kind"], r.get("n")) for r in pick(rows, 4)] == [("policy", 0), ("uncovered", 9), ("order", 7),
                                                                 ("policy", 1)]
    assert len(pick(rows, 0)) == 7 and pick(rows, 100) == pick(rows, 0)


def _metric(recall: float) -> dict:
    return {"fact_recall": recall, "all_facts": recall, "invented_answers": 0.25, "unknown_not_found": 1.0,
            "unknown_orders": 2, "uncovered_said": 0.0, "uncovered": 1, "covered_refused": 0.0, "covered": 3}


def test_report_shows_four_cells_per_set():
    cells = {who: {"no_context": _metric(0.1), "context": _metric(0.6)} for who in ("base", "finetune")}
    example = {"question": "q|1", "facts": ["$5"], **{f"{w}/{c}": "a" for w in ("base", "finetune")
                                                      for c in ("no_context", "context")}}
    task = {"sets": {"generated": {"rows": 6, "kinds": {"policy": 3, "unknown_order": 2, "uncovered": 1},
                                   "facts_in_context": 0.9, "cells": cells, "examples": [example]}}}
    lines = task_lines(task)
    assert "| fine-tune | with | 60.0% | 60.0% | 25.0% | 100.0% of 2 | 0.0% of 1 | 0.0% of 3 | n/a |" in lines
    cells["finetune"]["context"] |= {"styled": 4, "style_followed": 0.75}
    assert "| fine-tune | with | 60.0% | 60.0% | 25.0% | 100.0% of 2 | 0.0% of 1 | 0.0% of 3 | 75.0% of 4 |" in \
        task_lines(task)
    assert sum(line.startswith(("| base |", "| fine-tune |")) for line in lines) == 4
    assert "| q\\|1 | $5 | a | a | a | a |" in lines
    assert task_summary(task)["generated"]["finetune"]["context"]["fact_recall"] == 0.6


def test_task_sets_need_rows_that_name_their_persona(tmp_path):
    asked = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "facts": ["x"]}
    handwritten = tmp_path / "hw.jsonl"
    handwritten.write_text(json.dumps({**asked, "persona": "order_assistant", "kind": "uncovered"}) + "\n")
    plain = [asked, asked]
    assert task_sets(plain, TaskOptions(8)) == {}  # the old rows: the plain task metric applies
    sets = task_sets(plain + [{**asked, "persona": "billing_pricing"}], TaskOptions(8, 0, handwritten))
    assert {name: [r.get("persona") for r in rows] for name, rows in sets.items()} == {
        "generated": ["billing_pricing"], "handwritten": ["order_assistant"]}


# ---------------------------------------------------------------- layouts a persona asks for

BREAKDOWN = ("Here is the charge for order BL-12124, step by step:\n1. Items: 1 x Breeze air purifier, $149.00.\n"
             "2. Shipping: express, $12.99.\n3. Total charged: $161.99, paid with your Visa card.")


@pytest.mark.parametrize("answer, style, expected", [
    (BREAKDOWN, "breakdown", True),
    ("Order BL-12124 came to $161.99 in total (express shipping included).", "breakdown", False),
    ("1. Items: $149.00.\n2. Total: $161.99.", "breakdown", False),  # shipping step missing
    ("Pros:\n- Free express shipping.\nCons:\n- It costs $9.99 a month.", "pros_cons", True),
    ("The upside is free shipping; the downside is the price.", "pros_cons", True),
    ("Brightline Plus costs $9.99 a month and includes free express shipping.", "pros_cons", False),
    ("No problem:\n1. Charge it for 30 minutes.\n2. Hold the power button for 10 seconds.", "novice", True),
    ("Charge it for 30 minutes, then hold the power button for 10 seconds.", "novice", False),
    ("Short version: charge it for 30 minutes, then hold power for 10 seconds.", "expert", True),
    ("1. Charge it for 30 minutes.\n2. Hold the power button.", "expert", False),
    ("Short version: " + "charge it and wait " * 20, "expert", False),  # 80 words is not short
])
def test_follows_style_reads_each_layout(answer, style, expected):
    assert follows_style(answer, style) is expected


def test_style_score_counts_styled_rows_only_and_unknown_styles_are_refused():
    rows = [{"style": "breakdown"}, {"style": "expert"}, {}]
    assert style_score([BREAKDOWN, BREAKDOWN, "anything"], rows) == {"styled": 2, "style_followed": 0.5}
    assert style_score(["x"], [{}]) == {"styled": 0, "style_followed": 0.0}
    with pytest.raises(ValueError, match="unknown answer style 'haiku'"):
        follows_style("x", "haiku")


def test_list_numbers_are_layout_not_facts():
    given = "Order BL-12124: items 1 x Breeze air purifier; items subtotal $149.00; express shipping $12.99; total $161.99 paid with Visa card."
    assert invented_facts(BREAKDOWN, given) == []
    assert invented_facts(BREAKDOWN.replace("$12.99", "$2.99"), given) == ["$2.99"]
    assert [w for _, w in claims("Step 2. costs $5")] == ["$5", "2"]  # a number inside a line is still a fact
