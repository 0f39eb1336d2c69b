"""Order lookup from the Space owner's own HTTP order service (serving/context/orders.py `HttpOrders`), chosen by
environment variables (`ContextSettings.from_env`), against a real HTTP server on loopback serving the demo orders.

A record is found, an unknown number is unknown, and a service that fails, stalls, answers garbage or another order
is "unavailable" within its timeout: never a made-up record, never a hung chat.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from serving.context.layer import ContextLayer, ContextSettings
from serving.context.orders import HttpOrders, LookupUnavailable, MalformedOrderId, read_orders_csv
from serving.personas import load_personas

ORDERS = {o.id: o for o in read_orders_csv(Path(__file__).resolve().parents[1] / "data" / "support" / "orders.csv")}
KNOWN = next(iter(ORDERS))
TOKEN = "s3cret-token"


class OrderService(BaseHTTPRequestHandler):
    """GET /orders/<id>: the record as JSON, 404 when unknown; `mode` (on the server) makes it misbehave."""

    def do_GET(self):  # noqa: N802 - http.server's name
        mode = self.server.mode
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        if mode == "slow":
            time.sleep(3)
        order = ORDERS.get(unquote(self.path.rsplit("/", 1)[-1]))
        if mode == "token" and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401, b'{"error": "unauthorized"}')
        if mode == "error":
            return self._send(500, b"internal error")
        if order is None:
            return self._send(404, b'{"error": "no such order"}')
        body = {"garbage": b"<html>not json</html>", "list": b"[1, 2]",
                "other": json.dumps(ORDERS[next(k for k in ORDERS if k != order.id)].model_dump(mode="json")).encode(),
                "partial": json.dumps({"id": order.id, "status": "lost in space"}).encode()}.get(mode)
        self._send(200, body or json.dumps(order.model_dump(mode="json")).encode())

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def service():
    server = ThreadingHTTPServer(("127.0.0.1", 0), OrderService)
    server.mode, server.seen = "ok", []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/orders/{{id}}"
    yield server
    server.shutdown()
    server.server_close()


def test_a_known_order_is_the_services_record_and_an_unknown_one_is_none(service):
    orders = HttpOrders(service.url, timeout_s=2)
    assert orders.find(KNOWN.lower().replace("-", "")) == ORDERS[KNOWN]  # typed as customers type it
    assert orders.find("BL-00000") is None
    assert service.seen[0][0] == f"/orders/{KNOWN}" and service.seen[0][1] is None  # no token: no header
    with pytest.raises(MalformedOrderId, match="BL followed by five digits"):
        orders.find("BL-12")


@pytest.mark.parametrize("mode,reason", [("error", "HTTP 500"), ("garbage", "not an order"), ("list", "not an order"),
                                         ("partial", "not an order"), ("other", "got BL-")])
def test_a_service_that_misbehaves_is_unavailable_never_a_made_up_record(service, mode, reason):
    service.mode = mode
    with pytest.raises(LookupUnavailable, match=reason):
        HttpOrders(service.url, timeout_s=2).find(KNOWN)


def test_a_stalled_service_is_unavailable_after_its_timeout(service):
    service.mode = "slow"
    started = time.monotonic()
    with pytest.raises(LookupUnavailable):
        HttpOrders(service.url, timeout_s=0.3).find(KNOWN)
    assert time.monotonic() - started < 2.5  # the service takes 3 s: the visitor waits the timeout, not that


def test_the_space_owner_picks_the_service_and_its_token_by_environment(service):
    service.mode = "token"
    personas = load_personas()
    persona = next(p for p in personas.personas.values() if p.order_lookup)
    env = {"IRIS_ORDERS_URL": service.url, "IRIS_ORDERS_TOKEN": TOKEN, "IRIS_ORDERS_TIMEOUT_S": "2"}
    layer = ContextLayer.from_personas([persona], settings=ContextSettings.from_env(env))
    found = layer.find_orders(persona, f"Where is my order {KNOWN}? And BL-00000?")
    assert found.found == (ORDERS[KNOWN],) and found.unknown == ("BL-00000",) and not found.unavailable
    assert service.seen[0][1] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(ContextSettings.from_env(env))  # the token never reaches a log line
    # Without the token the service refuses: the chat hears "unavailable", not "no such order".
    layer = ContextLayer.from_personas([persona], settings=ContextSettings.from_env({"IRIS_ORDERS_URL": service.url}))
    refused = layer.find_orders(persona, f"Where is my order {KNOWN}?")
    assert refused.unavailable == (KNOWN,) and not refused.found and not refused.unknown


def test_a_service_that_is_down_leaves_the_chat_working(service):
    url = service.url
    service.shutdown()
    service.server_close()
    personas = load_personas()
    persona = next(p for p in personas.personas.values() if p.order_lookup)
    layer = ContextLayer.from_personas([persona], settings=ContextSettings.from_env({"IRIS_ORDERS_URL": url}))
    assert layer.find_orders(persona, f"Where is {KNOWN}?").unavailable == (KNOWN,)


@pytest.mark.parametrize("env,message", [
    ({"IRIS_ORDERS_URL": "ftp://shop.example/orders"}, "IRIS_ORDERS_URL 'ftp://shop.example/orders' is not an order "
                                                       "service URL: expected an http(s) URL with {id}"),
    ({"IRIS_ORDERS_URL": "https://shop.example/orders"}, "expected an http(s) URL with {id}"),
    ({"IRIS_ORDERS_TIMEOUT_S": "0"}, "IRIS_ORDERS_TIMEOUT_S"),
])
def test_a_bad_order_setting_names_the_variable_and_the_expected_form(env, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("{", r"\{")
                       .replace("}", r"\}").replace(".", r"\.")):
        ContextSettings.from_env(env)


def test_an_owners_sqlite_file_is_used_as_is_never_rebuilt_from_the_demo_csv(tmp_path):
    settings = ContextSettings.from_env({"IRIS_ORDERS_DB": str(tmp_path / "shop.sqlite")})
    assert settings.orders_csv is None and settings.orders_db == tmp_path / "shop.sqlite"
    store = settings.order_lookup()
    assert not (tmp_path / "shop.sqlite").exists()  # nothing written into the owner's path
    with pytest.raises(LookupUnavailable, match="not found"):
        store.find(KNOWN)
