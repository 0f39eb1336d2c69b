"""One call per request: a persona's knowledge and order lookup turned into context text and sources.

Built once at start-up (`ContextLayer.from_personas`): every knowledge folder a persona names is
loaded, validated and indexed then, so a bad article stops the app naming the file instead of failing
a visitor's question. Which persona gets what is persona data (`knowledge:`, `order_lookup:`);
nothing here knows a persona by name. Budget order: order records first (short, and the answer
depends on them), then passages in what is left.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from serving.context.articles import KnowledgeSettings, Passage
from serving.context.orders import (HttpOrders, LookupUnavailable, Order, OrderLookup, SqliteOrders,
                                    check_order_url, ensure_orders_db, malformed_order_ids, order_ids_in)
from serving.context.render import KNOWLEDGE_HEADER, OrderFindings, RequestContext, format_context
from serving.context.retrieval import CountTokens, Knowledge
from serving.errors import validation_message
from serving.personas import PERSONAS_DIR, Persona

log = logging.getLogger(__name__)
SUPPORT_DATA = Path(__file__).resolve().parents[2] / "data" / "support"


class ContextSettings(BaseModel):
    """Where the context layer finds its data, and its limits."""

    model_config = ConfigDict(frozen=True)

    knowledge: KnowledgeSettings = KnowledgeSettings()
    """Limits of every knowledge folder."""
    orders_db: Path | None = SUPPORT_DATA / "orders.sqlite"
    """SQLite order store read by order lookup; None: no store (order numbers get "unavailable")."""
    orders_csv: Path | None = SUPPORT_DATA / "orders.csv"
    """CSV the store is (re)built from at start-up when it is missing or older; None: use the store as is."""
    orders_url: str | None = None
    """The Space owner's HTTP order service (a URL with `{id}`, see `HttpOrders`); used instead of `orders_db`."""
    orders_token: SecretStr | None = None
    """Bearer token sent to `orders_url`, if it needs one."""
    orders_timeout_s: float = Field(2.0, gt=0, le=30)
    """How long a lookup waits for `orders_url` before answering "unavailable"."""
    busy_timeout_s: float = Field(0.5, gt=0, le=10)
    """How long a lookup waits for a locked database before answering "unavailable"."""
    max_orders: int = Field(3, ge=1, le=20)
    """Most order numbers looked up for one message."""
    budget_share: float = Field(0.375, gt=0, le=0.75)
    """Share of a model's context the context text may take (SmolLM2's 4,096: 1,536 tokens; the 1,024-token demo
    models: 384), leaving the rest to the persona prompt, the history and the answer."""

    @field_validator("orders_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_order_url(value)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ContextSettings:
        """The order store a Space owner picks without code: `IRIS_ORDERS_URL` (+ `IRIS_ORDERS_TOKEN`,
        `IRIS_ORDERS_TIMEOUT_S`), else `IRIS_ORDERS_DB`, a SQLite file of their own (never rebuilt from the demo
        CSV), else the demo store. A bad value raises a ValueError naming the variable."""
        environ = os.environ if environ is None else environ
        values: dict = {}
        if environ.get("IRIS_ORDERS_DB"):
            values |= {"orders_db": Path(environ["IRIS_ORDERS_DB"]), "orders_csv": None}
        for name in ("orders_url", "orders_token", "orders_timeout_s"):
            if environ.get(f"IRIS_{name.upper()}"):
                values[name] = environ[f"IRIS_{name.upper()}"]
        try:
            return cls(**values)
        except ValidationError as err:
            labels = {name: f"IRIS_{name.upper()}" for name in ("orders_url", "orders_token", "orders_timeout_s")}
            raise ValueError(validation_message(err, "Order lookup settings:", labels)) from None

    def budget_tokens(self, n_ctx: int) -> int:
        """Tokens of context text a model with an `n_ctx`-token context gets."""
        return int(n_ctx * self.budget_share)

    def order_lookup(self) -> OrderLookup | None:
        """The HTTP order service when one is set, else the SQLite store (built from the CSV first when one is given
        and exists)."""
        if self.orders_url is not None:
            token = self.orders_token.get_secret_value() if self.orders_token else None
            return HttpOrders(self.orders_url, self.orders_timeout_s, token)
        if self.orders_db is None:
            return None
        if self.orders_csv is not None and self.orders_csv.is_file():
            ensure_orders_db(self.orders_csv, self.orders_db)
        return SqliteOrders(self.orders_db, self.busy_timeout_s)


class ContextLayer:
    """Per-persona knowledge and one order store; `for_request` is the engine's (and trainer's) entry."""

    def __init__(self, knowledge: Mapping[str, Knowledge], orders: OrderLookup | None,
                 settings: ContextSettings = ContextSettings()):
        self._knowledge = dict(knowledge)
        self._orders = orders
        self.settings = settings

    @classmethod
    def from_personas(cls, personas: Iterable[Persona], personas_dir: Path = PERSONAS_DIR,
                      settings: ContextSettings = ContextSettings()) -> ContextLayer:
        """Load each knowledge folder the personas name once (raises `KnowledgeError` naming a bad file)."""
        folders: dict[Path, Knowledge] = {}
        by_persona = {}
        for persona in personas:
            folder = persona.knowledge_dir(personas_dir)
            if folder is not None:
                key = folder.resolve()
                if key not in folders:
                    folders[key] = Knowledge.load(folder, settings.knowledge)
                by_persona[persona.id] = folders[key]
        return cls(by_persona, settings.order_lookup(), settings)

    def knowledge(self, persona: Persona) -> Knowledge | None:
        """The persona's indexed knowledge, or None if it names none."""
        return self._knowledge.get(persona.id)

    def grounds(self, persona: Persona) -> bool:
        """True when `persona` answers from knowledge or order lookup (its requests get context)."""
        return persona.id in self._knowledge or persona.order_lookup

    def prefix_text(self, persona: Persona, count_tokens: CountTokens, budget_tokens: int) -> str:
        """How every request's context text of `persona` starts: its whole knowledge when that fits, else the
        passages' header; "" without knowledge. What the engine pre-reads after the persona prompt."""
        if self.knowledge(persona) is None:
            return ""
        return self.shared_text(persona, count_tokens, budget_tokens) or KNOWLEDGE_HEADER

    def shared_text(self, persona: Persona, count_tokens: CountTokens, budget_tokens: int) -> str | None:
        """The context every visitor of `persona` gets when its whole knowledge fits (to pre-read as a
        prefix when a model loads); None when it does not fit or the persona has no knowledge."""
        knowledge = self.knowledge(persona)
        if knowledge is None:
            return None
        text = format_context(knowledge.passages).text
        return text if count_tokens(text) <= budget_tokens else None

    def for_request(self, persona: Persona, question: str, count_tokens: CountTokens,
                    budget_tokens: int) -> RequestContext:
        """Context for `question` (the visitor's message; include earlier user turns to catch an order
        number given before) whose text has at most `budget_tokens` tokens when passages are involved."""
        orders = self.find_orders(persona, question)
        knowledge = self.knowledge(persona)
        if knowledge is None:
            return format_context(None, orders)
        fixed = count_tokens(format_context(None, orders).text) + count_tokens(KNOWLEDGE_HEADER) + 2
        passages = _fitting(knowledge.retrieve(question, budget_tokens - fixed, count_tokens), orders,
                            count_tokens, budget_tokens)
        if not passages and knowledge.rank(question):  # articles match but none fits: never say "no article"
            return format_context(None, orders)
        return format_context(passages, orders)

    def find_orders(self, persona: Persona, question: str) -> OrderFindings:
        """Records, unknown and malformed numbers for the order numbers `question` names."""
        if not persona.order_lookup:
            return OrderFindings()
        ids = tuple(order_ids_in(question)[: self.settings.max_orders])
        malformed = tuple(malformed_order_ids(question))
        try:
            records = [(i, self._find(i)) for i in ids]
        except LookupUnavailable as err:
            log.warning("order lookup unavailable: %s", err)
            return OrderFindings(malformed=malformed, unavailable=ids)
        return OrderFindings(found=tuple(o for _, o in records if o), malformed=malformed,
                             unknown=tuple(i for i, o in records if o is None))

    def _find(self, order_id: str) -> Order | None:
        if self._orders is None:
            raise LookupUnavailable("no order store configured")
        return self._orders.find(order_id)


def question_of(user_turns: Sequence[str]) -> str:
    """The question to retrieve and look up for: the latest user turn, then the order numbers earlier turns
    named (a visitor who gave the number before asks "and when will it arrive?")."""
    earlier = [order_id for turn in user_turns[:-1] for order_id in order_ids_in(turn)]
    return " ".join([user_turns[-1] if user_turns else "", *dict.fromkeys(earlier)])


def _fitting(passages: list[Passage], orders: OrderFindings, count_tokens: CountTokens,
             budget: int) -> list[Passage]:
    """`passages` less the lowest-ranked ones until the formatted context fits `budget`
    (the header and joins can cost a token or two more than estimated)."""
    while passages and count_tokens(format_context(passages, orders).text) > budget:
        passages = passages[:-1]
    return passages
