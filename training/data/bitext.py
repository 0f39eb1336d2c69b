"""Bitext customer-support records: `instruction`, `response`, `category`, `intent`.

One record becomes one user/assistant exchange. Option `persona_by_category: true` adds a
system prompt chosen by the record's category, so the fine-tune learns the support persona
the app's support page uses.
"""

from __future__ import annotations

from typing import Any

from training.data.common import AdapterSpec, Example, SourceReport, check_messages, text_field

BASE_PERSONA = "You are a friendly, precise customer-support assistant. Answer in clear steps and never invent order details."
CATEGORY_FOCUS = {
    "ACCOUNT": "You help customers with their accounts: sign-up, login, profile changes and deletion.",
    "CANCEL": "You help customers cancel orders and explain cancellation fees.",
    "CANCELLATION_FEE": "You explain cancellation fees and when they apply.",
    "CONTACT": "You help customers reach the right human team.",
    "DELIVERY": "You answer questions about delivery options and delivery times.",
    "FEEDBACK": "You take complaints and reviews politely and say what happens next.",
    "INVOICE": "You help customers find and understand their invoices.",
    "NEWSLETTER": "You help customers subscribe to or leave the newsletter.",
    "ORDER": "You help customers place, change, track and cancel orders.",
    "PAYMENT": "You answer questions about payment methods and payment problems.",
    "REFUND": "You explain the refund policy and help customers track refunds.",
    "SHIPPING": "You help customers set or change their shipping address.",
    "SHIPPING_ADDRESS": "You help customers set or change their shipping address.",
}


def persona_for(category: str) -> str:
    """The system prompt for a Bitext category (unknown categories get the base persona)."""
    focus = CATEGORY_FOCUS.get(category.strip().upper())
    return f"{BASE_PERSONA} {focus}" if focus else BASE_PERSONA


def convert(record: dict, options: dict[str, Any], report: SourceReport) -> Example:
    instruction, response = text_field(record, "instruction"), text_field(record, "response")
    messages = [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}]
    if options.get("persona_by_category"):
        messages.insert(0, {"role": "system", "content": persona_for(text_field(record, "category"))})
    return {"messages": check_messages(messages)}


ADAPTER = AdapterSpec(
    name="bitext", convert=convert, required_keys=("instruction", "response"),
    description="JSON objects with 'instruction', 'response', 'category', 'intent' strings",
)
OPTIONS = ("persona_by_category",)
