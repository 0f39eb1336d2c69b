"""The pool's RAM budget with a stand-in loader (the pool takes any object with `close()`): no llama.cpp needed.

Races between first loads and eviction of models that have requests queued; the real-model pool tests are in
test_serving_pool.py.
"""

import threading

import pytest

from serving.errors import Busy
from serving.pool import ModelPool

UNIT = 100


class Model:
    def __init__(self, name: str):
        self.name, self.closed = name, False

    def close(self) -> None:
        self.closed = True


def use(pool: ModelPool, name: str, load=None):
    return pool.use(name, lambda: 60 * UNIT // 100, load or (lambda: Model(name)))


def test_two_first_loads_cannot_both_pass_the_budget():
    pool = ModelPool(budget_bytes=UNIT, queue_timeout_s=5)
    loading, release, errors = threading.Event(), threading.Event(), []

    def slow_load() -> Model:
        loading.set()
        release.wait(5)
        return Model("a")

    def first() -> None:
        try:
            with use(pool, "a", slow_load):
                pass
        except Exception as err:  # collected, asserted below
            errors.append(err)

    thread = threading.Thread(target=first)
    thread.start()
    assert loading.wait(5)  # "a" is loading and holds no model yet
    with pytest.raises(Busy, match="60 used or reserved") as busy:
        with use(pool, "b"):
            pass
    assert "try again" in busy.value.user_message
    release.set()
    thread.join(5)
    assert not errors and pool.loaded_ids() == ["a"] and pool.used_bytes() <= pool.budget_bytes


def test_a_model_with_queued_requests_is_not_evicted():
    pool = ModelPool(budget_bytes=UNIT, queue_timeout_s=5)
    with use(pool, "a") as a:
        pass
    queued = pool._enter("a")  # a request for "a" that is waiting for it, not yet holding it
    try:
        with pytest.raises(Busy):
            with use(pool, "b"):
                pass
        assert not a.closed and pool.loaded_ids() == ["a"]
    finally:
        with pool._lock:
            queued.users -= 1
    with use(pool, "b") as b:  # once nobody uses or waits for "a", it is the one unloaded
        assert a.closed and pool.loaded_ids() == ["b"] and b.name == "b"


def test_a_failed_load_gives_its_reservation_back():
    pool = ModelPool(budget_bytes=UNIT, queue_timeout_s=5)

    def broken() -> Model:
        raise RuntimeError("bad file")

    with pytest.raises(RuntimeError):
        with use(pool, "a", broken):
            pass
    with use(pool, "b") as b:
        assert b.name == "b" and pool.used_bytes() == 60


def test_many_requests_share_one_loaded_model_and_it_is_not_evicted_while_used():
    pool = ModelPool(budget_bytes=UNIT, queue_timeout_s=5)
    with use(pool, "a") as first, use(pool, "a") as second:  # two users at once: one load, one object
        assert first is second and pool.users("a") == 2
        with pytest.raises(Busy):
            with use(pool, "b"):
                pass
    assert pool.users("a") == 0


def test_a_model_that_stopped_working_is_loaded_again():
    pool = ModelPool(budget_bytes=UNIT, queue_timeout_s=5)
    with use(pool, "a") as broken:
        broken.alive = False  # e.g. its decode thread died
    with use(pool, "a") as fresh:
        assert fresh is not broken and broken.closed and not fresh.closed
