"""A request's context as plain text for the system turn, and the sources to show beside the answer.

Pure: passages and order findings in, text and `Source`s out. Passage text is copied as written (a
`<|im_start|>` in an article stays those characters here; the prompt renderer tokenizes message text
as text). Help-center passages come first and order records last, so when the whole knowledge is sent
the text starts with the same bytes for every visitor of a persona and the scheduler can reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from serving.context.articles import Passage
from serving.context.orders import ORDER_ID_FORMAT, Order
from serving.context.retrieval import passages_text

KNOWLEDGE_HEADER = "Help center passages (answer from them; if they do not cover the question, say so):"
NO_PASSAGE = "Help center: no article matches this question; say that you do not know rather than guess."
ORDERS_HEADER = "Order records:"
NOTES_HEADER = "Passages from the learner's own notes (answer from them; if they do not cover the question, say so):"
UNAVAILABLE = "Order lookup is unavailable right now."
EXCERPT_CHARS = 240
MAX_TITLE, MAX_EXCERPT = 300, 1000  # bounds of a kept `Source` (a visitor's browser stores them with the answer)


class Source(BaseModel):
    """One thing an answer was given: an article passage or an order record."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["article", "order"]
    """What it is."""
    title: str = Field(max_length=MAX_TITLE)
    """Article title and section, or "Order BL-12345"."""
    ref: str = Field(max_length=MAX_TITLE)
    """Article path and anchor (`shop/shipping.md#delivery-times`), or the order number."""
    excerpt: str = Field(max_length=MAX_EXCERPT)
    """The start of the passage, or the order record line."""


class OrderFindings(BaseModel):
    """What order lookup found for the order numbers a message names."""

    model_config = ConfigDict(frozen=True)

    found: tuple[Order, ...] = ()
    """Records of the numbers that exist."""
    unknown: tuple[str, ...] = ()
    """Well-formed numbers with no order."""
    malformed: tuple[str, ...] = ()
    """Text written like an order number that is not one, as typed."""
    unavailable: tuple[str, ...] = ()
    """Numbers that could not be looked up because the order store is down."""

    def lines(self) -> list[str]:
        """One plain-text line per finding."""
        return ([o.describe() for o in self.found] + [f"No order found with id {i}." for i in self.unknown]
                + [f"{m!r} is not an order number: order numbers are {ORDER_ID_FORMAT}." for m in self.malformed]
                + [f"{UNAVAILABLE} Nothing is known about order {i}." for i in self.unavailable])


class RequestContext(BaseModel):
    """The context of one request: text for the system turn and what to show as sources."""

    model_config = ConfigDict(frozen=True)

    text: str = ""
    """Plain text to append to the persona's system prompt ("" when there is nothing)."""
    sources: tuple[Source, ...] = ()
    """Passages and order records in `text`, in the same order."""
    notice: str | None = None
    """A short message for the visitor when something could not be looked up."""


def system_text(prompt: str, context_text: str) -> str:
    """A system turn: the persona prompt, then the request's context (shared part first, see the module doc)."""
    return f"{prompt}\n\n{context_text}" if context_text else prompt


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` cut at a word boundary to about `limit` characters."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",.;:") + " …"


def passage_source(passage: Passage) -> Source:
    return Source(kind="article", title=excerpt(passage.label, MAX_TITLE - 2), ref=passage.ref[:MAX_TITLE],
                  excerpt=excerpt(passage.text))


def order_source(order: Order) -> Source:
    return Source(kind="order", title=f"Order {order.id}", ref=order.id,
                  excerpt=excerpt(order.describe(), MAX_EXCERPT - 2))


def format_context(passages: Sequence[Passage] | None, orders: OrderFindings = OrderFindings()) -> RequestContext:
    """The text and sources for `passages` (None: the persona has no knowledge; empty: nothing matched)
    and `orders`."""
    blocks = []
    if passages:
        blocks.append(f"{KNOWLEDGE_HEADER}\n\n{passages_text(passages)}")
    elif passages is not None:
        blocks.append(NO_PASSAGE)
    if orders.lines():
        blocks.append("\n".join([ORDERS_HEADER, *orders.lines()]))
    sources = [passage_source(p) for p in passages or ()] + [order_source(o) for o in orders.found]
    notice = UNAVAILABLE if orders.unavailable else None
    return RequestContext(text="\n\n".join(blocks), sources=tuple(sources), notice=notice)


def with_notes(context: RequestContext, notes: Sequence[Passage]) -> RequestContext:
    """`context` followed by passages of the visitor's own notes (retrieved by the caller for this request), as
    plain text after everything shared, and listed as sources after the context's own."""
    if not notes:
        return context
    block = f"{NOTES_HEADER}\n\n{passages_text(notes)}"
    return context.model_copy(update={"text": "\n\n".join(t for t in (context.text, block) if t),
                                      "sources": (*context.sources, *map(passage_source, notes))})
