"""The support task metric and the held-out split it runs on: facts come from reply templates, the
held-out phrasings never occur in training, and `states` accepts a fact however it is written."""

import json
import re

from training.demo import support_data as s
from training.demo.datagen import REPO_ROOT, held_out, reply_facts
from training.stages.task_metric import score, states


def test_facts_are_template_policy_numbers_and_the_given_order_id():
    template = ("Done. Order {order} is cancelled and you will get a full refund to your {payment} within 3 to 5 "
                "business days.")
    slots = {"order": "BL-12345", "payment": "Visa card"}
    assert reply_facts(template, slots, customer_gave_order=True) == ["3 to 5", "BL-12345"]
    assert reply_facts(template, slots, customer_gave_order=False) == ["3 to 5"]
    assert reply_facts("It should arrive in {days} business days.", {"days": "4"}, False) == []


def test_states_accepts_equivalent_writings_only():
    assert states("Refunds take 3-5 business days.", "3 to 5")
    assert states("Order #12345 is cancelled", "BL-12345") and states("bl-12345 shipped", "BL-12345")
    assert not states("Order BL-123456 is cancelled", "BL-12345")
    assert states("Shipping costs $4.99.", "$4.99") and not states("Shipping costs $4.", "$4.99")
    assert not states("within 30 minutes", "30 days")


def test_score_counts_recall_all_facts_and_order_echo():
    result = score([("Returns within 30 days; order BL-11111.", ["30 days", "BL-11111"]),
                    ("No idea.", ["$50", "BL-22222"]), ("ignored", [])])
    assert result == {"answers": 2, "facts": 4, "fact_recall": 0.5, "all_facts": 0.5, "order_id_echo": 0.5,
                      "order_ids": 2}


def read(name):
    return [json.loads(line) for line in (REPO_ROOT / "data" / "support" / name).read_text().splitlines()]


def test_heldout_phrasings_never_occur_in_training():
    train_firsts = {next(m["content"] for m in r["messages"] if m["role"] == "user").lower() for r in read("train.jsonl")}
    held = [o for i in s.INTENTS for c in i.cases for o in held_out(c.openers)]
    assert len(held) >= 30
    for opener in held:
        longest = max(re.split(r"\{\w+\}", opener.lower()), key=len).strip()
        if len(longest) >= 10:
            assert not any(longest in first for first in train_firsts), opener
    test = read("test.jsonl")
    assert len(test) == 150 and sum(bool(r["facts"]) for r in test) >= 75
    assert len({r["intent"] for r in test}) >= 7
