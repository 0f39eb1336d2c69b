"""Deterministic demo orders for the support data set (`python -m training.demo.orders`).

Writes data/support/orders.csv, the order store the support personas look orders up in (the app
builds data/support/orders.sqlite from it at start-up: `serving.context.orders.build_orders_db`).
Products, carriers and payment methods come from `support_data`, prices from the help center's price
list, shipping costs and times from its shipping article (`shop_facts`), so a record never contradicts
the knowledge. Same seed, same bytes. It only writes text; lookup lives in `serving.context`.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import random
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from serving.context.orders import COLUMNS, Order
from serving.files import write_text_atomic
from training.demo import support_data as s
from training.demo.shop_facts import shop_facts

REPO_ROOT = Path(__file__).resolve().parents[2]
KNOWLEDGE_DIR = REPO_ROOT / "personas" / "knowledge" / "shop"
ORDERS_CSV = REPO_ROOT / "data" / "support" / "orders.csv"
TODAY = dt.date(2026, 6, 1)
"""The demo shop's "today": every date is relative to it, so the file does not change with the clock."""
STATUSES = ("processing", "shipped", "shipped", "delivered", "delivered", "delivered", "cancelled", "returned")
_PRICE_ROW = re.compile(r"^\| ([^|]+?) \| \$(\d+\.\d\d) \|$", re.MULTILINE)


def product_prices(knowledge_dir: Path = KNOWLEDGE_DIR) -> dict[str, Decimal]:
    """{product: price} from the price-list table of the help center; every product must be listed."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(Path(knowledge_dir).glob("*.md")))
    prices = {name: Decimal(price) for name, price in _PRICE_ROW.findall(text)}
    missing = [p for p in s.PRODUCTS if p not in prices]
    if missing:
        raise ValueError(f"{knowledge_dir}: no price-list row for {', '.join(missing)}")
    return prices


@dataclass(frozen=True)
class ShippingRates:
    """What shipping costs and takes, as the help center's shipping article says."""

    free_standard_over: Decimal
    standard: Decimal
    express: Decimal
    transit_days: dict[str, tuple[int, int]]
    """{method: (fewest, most) business days}."""

    @classmethod
    def from_articles(cls, knowledge_dir: Path = KNOWLEDGE_DIR) -> ShippingRates:
        facts = {name: fact.value for name, fact in shop_facts(knowledge_dir).items()}
        money = lambda name: Decimal(facts[name].lstrip("$"))  # noqa: E731
        days = lambda name: tuple(int(n) for n in facts[name].split(" to "))  # noqa: E731
        return cls(money("free_over"), money("standard_cost"), money("express_cost"),
                   {"standard": days("standard_days"), "express": days("express_days")})

    def cost(self, method: str, subtotal: Decimal) -> Decimal:
        if method == "express":
            return self.express
        return Decimal("0.00") if subtotal > self.free_standard_over else self.standard


def add_business_days(day: dt.date, n: int) -> dt.date:
    while n > 0:
        day += dt.timedelta(days=1)
        n -= day.weekday() < 5
    return day


def tracking_number(carrier: str, rng: random.Random) -> str:
    digits = lambda n: "".join(rng.choice("0123456789") for _ in range(n))  # noqa: E731
    alnum = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ0123456789") for _ in range(6))
    return {"UPS": f"1Z{alnum}{digits(10)}", "DHL": digits(10), "FedEx": digits(12)}.get(carrier, f"9400{digits(18)}")


def _items(rng: random.Random, prices: dict[str, Decimal]) -> tuple[str, Decimal]:
    picked = [(rng.choice((1, 1, 1, 2)), product) for product in rng.sample(s.PRODUCTS, rng.choice((1, 1, 2, 3)))]
    return "; ".join(f"{n} x {p}" for n, p in picked), sum((n * prices[p] for n, p in picked), Decimal("0.00"))


def _dates(status: str, method: str, rng: random.Random, rates: ShippingRates) -> dict:
    """ordered/shipped/expected/delivered for an order in `status`, relative to `TODAY`."""
    if status in ("processing", "cancelled"):
        age = rng.randint(0, 1) if status == "processing" else rng.randint(1, 40)
        return {"ordered": TODAY - dt.timedelta(days=age)}
    if status == "shipped":
        shipped = TODAY - dt.timedelta(days=rng.randint(0, 2))
    else:
        shipped = TODAY - dt.timedelta(days=rng.randint(8 if status == "returned" else 5, 60))
    arrives = add_business_days(shipped, rng.randint(*rates.transit_days[method]))
    dates = {"ordered": shipped - dt.timedelta(days=rng.randint(0, 1)), "shipped": shipped}
    return {**dates, "expected": arrives} if status == "shipped" else {**dates, "delivered": arrives}


def demo_order(number: int, rng: random.Random, prices: dict[str, Decimal], rates: ShippingRates) -> Order:
    status, method = rng.choice(STATUSES), rng.choice(("standard", "standard", "standard", "express"))
    items, subtotal = _items(rng, prices)
    shipping = rates.cost(method, subtotal)
    carrier = rng.choice(s.CARRIERS) if status not in ("processing", "cancelled") else None
    return Order(id=f"BL-{number}", status=status, items=items, shipping_method=method, subtotal=subtotal,
                 shipping=shipping, total=subtotal + shipping, payment=rng.choice(s.PAYMENT_METHODS),
                 carrier=carrier, tracking=tracking_number(carrier, rng) if carrier else None,
                 **_dates(status, method, rng, rates))


def demo_orders(count: int = 200, seed: int = 0, knowledge_dir: Path = KNOWLEDGE_DIR) -> list[Order]:
    """`count` orders with distinct numbers, sorted by number."""
    rng = random.Random(seed)
    prices, rates = product_prices(knowledge_dir), ShippingRates.from_articles(knowledge_dir)
    numbers = sorted(rng.sample(range(10000, 100000), count))
    return [demo_order(n, rng, prices, rates) for n in numbers]


def orders_csv_text(orders: list[Order]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([("" if getattr(o, c) is None else str(getattr(o, c))) for c in COLUMNS] for o in orders)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.demo.orders", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ORDERS_CSV, help="CSV to write (default data/support/orders.csv)")
    parser.add_argument("--count", type=int, default=200, help="number of orders (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    args = parser.parse_args(argv)
    write_text_atomic(args.out, orders_csv_text(demo_orders(args.count, args.seed)))
    print(f"orders: {args.out} ({args.count} orders)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
