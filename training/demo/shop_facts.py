"""The shop's policy facts as the help-center articles state them: the one source the data generators read.

Each fact is named, lives in one article section and is found there by a pattern with one group
(`FACT_PATTERNS`), so a reply template says `{return_window}` and the generated answer states whatever
returns.md says today. A pattern that no longer matches raises `FactError` naming the article and
section: an edited article breaks generation loudly instead of training a stale number.
Reads articles through `serving.context.articles` (the same parsing the app uses); writes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from serving.context.articles import Article, load_articles

KNOWLEDGE_DIR = Path(__file__).resolve().parents[2] / "personas" / "knowledge" / "shop"

# name -> (article file, section heading, pattern whose one group is the fact as the article writes it)
FACT_PATTERNS: dict[str, tuple[str, str, str]] = {
    "standard_days": ("shipping.md", "Delivery times", r"Standard shipping takes (\d+ to \d+) business days"),
    "express_days": ("shipping.md", "Delivery times", r"Express shipping takes (\d+ to \d+) business days"),
    "express_cutoff": ("shipping.md", "Delivery times", r"when you order before (\d+ [ap]m)"),
    "free_over": ("shipping.md", "Shipping costs", r"free on orders over (\$\d+(?:\.\d\d)?)"),
    "standard_cost": ("shipping.md", "Shipping costs", r"standard shipping costs (\$\d+\.\d\d)"),
    "express_cost": ("shipping.md", "Shipping costs", r"Express shipping costs (\$\d+\.\d\d)"),
    "international_days": ("shipping.md", "International shipping", r"takes (\d+ to \d+) business days"),
    "processing_within": ("order-status.md", "Order statuses", r"to the carrier within (\d+ hours)"),
    "tracking_delay": ("order-status.md", "Tracking updates", r"up to (\d+ hours) to update"),
    "missing_wait": ("order-status.md", "Parcel marked delivered but not received", r"missing (\d+ hours) after"),
    "claim_days": ("order-status.md", "Parcel marked delivered but not received", r"within (\d+ business days)"),
    "return_window": ("returns.md", "Return window", r"within (\d+ days) of delivery"),
    "return_refund_days": ("returns.md", "How to return an item", r"refund is sent (\d+ to \d+) days"),
    "replacement_days": ("returns.md", "Damaged or broken items", r"ships within (\d+ business days)"),
    "refund_scan_days": ("refunds.md", "When we issue a refund", r"usually within (\d+ days)"),
    "refund_show_days": ("refunds.md", "How long a refund takes to show", r"take (\d+ to \d+) business days"),
    "warranty": ("warranty.md", "Warranty length", r"have a (\w+-year) warranty"),
    "member_warranty": ("warranty.md", "Warranty length", r"members get (\w+ years)"),
    "cart_days": ("payments.md", "Declined payments", r"stays saved for (\d+ days)"),
    "hold_days": ("payments.md", "Charged twice", r"within (\d+ to \d+) business days"),
    "installments_over": ("payments.md", "Paying in installments", r"Orders over (\$\d+(?:\.\d\d)?)"),
    "price_match_days": ("pricing.md", "Price matching", r"within (\d+ days) after purchase"),
    "newsletter_discount": ("pricing.md", "Discounts", r"get (\d+%) off your first order"),
    "student_discount": ("pricing.md", "Discounts", r"Students get (\d+%) off"),
    "plan_month": ("membership.md", "Price", r"cost (\$\d+\.\d\d) a month"),
    "member_return_window": ("membership.md", "Benefits", r"extended returns of (\d+ days)"),
    "plan_year": ("membership.md", "Price", r"or (\$\d+(?:\.\d\d)?) a year"),
    "reset_link": ("account.md", "Forgotten password", r"works for (\d+ minutes)"),
    "code_wait": ("account.md", "Verification codes", r"new code after (\d+ seconds)"),
    "lock_tries": ("account.md", "Locked account", r"locks after (\w+) wrong passwords"),
    "unlock_after": ("account.md", "Locked account", r"by itself after (\d+ minutes)"),
    "charge_minutes": ("troubleshooting.md", "Device does not turn on", r"at least (\d+ minutes)"),
    "restart_seconds": ("troubleshooting.md", "Device does not turn on", r"for (\d+ seconds) to restart"),
    "firmware_battery": ("troubleshooting.md", "Updating firmware", r"charged above (\d+%)"),
    "reset_seconds": ("troubleshooting.md", "Factory reset", r"together for (\d+ seconds)"),
    "stock_ships": ("products.md", "Stock and availability", r"ships within (\d+ hours)"),
    "cancel_refund_days": ("cancellations.md", "Before the order ships", r"within (\d+ to \d+) business days"),
    "cancel_return_window": ("cancellations.md", "After the order has shipped", r"within (\d+ days) of delivery"),
}


class FactError(ValueError):
    """A fact the generators need that the articles no longer state; the message names article and section."""


@dataclass(frozen=True)
class Fact:
    """One shop fact and where it is written."""

    value: str
    """As the article writes it ("30 days", "$4.99", "3 to 5")."""
    ref: str
    """The passage that states it (`shop/returns.md#return-window`), as the context layer names passages."""


def _section(articles: tuple[Article, ...], file: str, heading: str):
    for article in articles:
        if article.path.name == file:
            for passage in article.passages:
                if passage.heading == heading:
                    return passage
    raise FactError(f"{file}: no section '## {heading}' (a shop fact is read from it)")


def shop_facts(knowledge_dir: Path = KNOWLEDGE_DIR) -> dict[str, Fact]:
    """{fact name: Fact} read from the articles in `knowledge_dir`; raises `FactError` naming what is missing."""
    articles = load_articles(knowledge_dir)
    facts = {}
    for name, (file, heading, pattern) in FACT_PATTERNS.items():
        passage = _section(articles, file, heading)
        match = re.search(pattern, passage.text)
        if match is None:
            raise FactError(f"{file} > {heading}: fact {name!r} not found (pattern {pattern!r}); "
                            "update the article or training/demo/shop_facts.py")
        facts[name] = Fact(value=match.group(1), ref=passage.ref)
    return facts


def fact_values(facts: dict[str, Fact]) -> dict[str, str]:
    """{name: value}: the slots a reply template is formatted with."""
    return {name: fact.value for name, fact in facts.items()}
