"""Adapter entries without weights: the registry's `source.adapter` (validation with the reasons), its file found like
any model file, its availability tied to its base's, a stale adapter told by its data's sha256, and the pool's riders
(an adapter counts only its own bytes, goes before its base, and keeps it loaded while used). The real llama.cpp path
is tests/test_adapter_serving.py."""

from __future__ import annotations

import copy
import threading
from pathlib import Path

import pytest

from serving.errors import Busy
from serving.pool import ModelPool
from serving.registry import LocalSource, RegistryError, parse_registry
from serving.resolve import Resolver
from training.export.adapter import data_sha256, stale_adapter

SHA = "a" * 64
RECIPE = {"base_checkpoint": "base-hf", "method": "lora", "lora": {"r": 4},
          "datasets": [{"format": "chat_jsonl", "path": "data/train.jsonl"}]}


def _raw(tmp_path: Path, **adapter) -> dict:
    (tmp_path / "base.gguf").write_bytes(b"GGUF base")
    (tmp_path / "lora.gguf").write_bytes(b"GGUF lora")
    return {"hub_owner": "t", "models": [
        {"id": "base", "display_name": "Base", "kind": "base", "context_length": 1024,
         "source": {"local": {"path": "base.gguf"}}},
        {"id": "tuned", "display_name": "Tuned", "kind": "fine-tuned", "context_length": 1024, "recipe": RECIPE,
         "source": {"adapter": {"base": "base", "local": {"path": "lora.gguf"}, **adapter}}}]}


def _parse(raw: dict, tmp_path: Path):
    return parse_registry(raw, tmp_path / "model_registry.yaml")


def test_an_adapter_entry_is_one_more_source_kind(tmp_path):
    registry = _parse(_raw(tmp_path, scale=0.5), tmp_path)
    tuned = registry.get("tuned")
    assert tuned.source.kind == "adapter" and tuned.base_model == "base" and tuned.source.adapter.scale == 0.5
    assert isinstance(tuned.source.file, LocalSource) and registry.local_path(tuned) == tmp_path / "lora.gguf"
    assert Resolver(registry).fetch(tuned) == tmp_path / "lora.gguf"  # found like any local file
    assert registry.get("base").source.file.path == "base.gguf" and registry.get("base").source.kind == "local"


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda m: m[1]["source"]["adapter"].update(base="nope"),
     r"entry 'tuned' \(#2\), field 'source.adapter.base': unknown base 'nope'; registered ids: base, tuned"),
    (lambda m: m.append({**copy.deepcopy(m[1]), "id": "tuned-2",
                         "source": {"adapter": {"base": "tuned", "local": {"path": "lora.gguf"}}}}),
     r"entry 'tuned-2'.*field 'source.adapter.base': the base 'tuned' is itself an adapter"),
    (lambda m: m[0].update(source={"remote": {"base_url": "http://10.0.0.5:8000/v1", "model": "m"}}),
     r"entry 'tuned'.*the base 'base' is a remote server"),
    (lambda m: m[1].update(context_length=2048),
     r"entry 'tuned'.*context_length 2048 differs from the base's 1024"),
    (lambda m: m[1].update(base_model="other"), r"base_model 'other' differs from source.adapter.base 'base'"),
    (lambda m: m[1]["source"]["adapter"].update(package={"distribution": "d", "path": "x.gguf"}),
     r"field 'source.adapter'.*exactly one of 'hub', 'local' or 'package'"),
    (lambda m: m[1]["source"]["adapter"].update(scale=0), r"field 'source.adapter.scale'.*greater than 0"),
    (lambda m: m[1]["source"]["adapter"].update(data_sha256="abc"), r"field 'source.adapter.data_sha256'.*64"),
    (lambda m: m[1]["source"]["adapter"]["local"].update(sha256="xyz"), r"field 'source.adapter.local.sha256'.*64"),
])
def test_adapter_entries_are_refused_with_the_reason(tmp_path, edit, reason):
    raw = _raw(tmp_path)
    edit(raw["models"])
    with pytest.raises(RegistryError, match=reason):
        _parse(raw, tmp_path)


def test_an_adapter_is_available_only_with_its_base(tmp_path):
    raw = _raw(tmp_path)
    raw["models"][0]["source"]["local"]["path"] = "missing-base.gguf"
    registry = _parse(raw, tmp_path)
    found = Resolver(registry).availability(registry.get("tuned"))
    assert not found.available
    assert found.reason.startswith("its base model Base is not available: its file missing-base.gguf is not on")


def test_a_stale_adapter_is_told_by_its_data_sha256(tmp_path):
    data = tmp_path / "data" / "train.jsonl"
    data.parent.mkdir()
    data.write_text('{"messages": []}\n')
    registry = _parse(_raw(tmp_path), tmp_path)
    trained_on = data_sha256(registry.get("tuned").recipe, tmp_path)
    assert trained_on is not None and len(trained_on) == 64
    assert stale_adapter(registry.get("tuned"), tmp_path) is None  # nothing recorded: nothing to compare
    registry = _parse(_raw(tmp_path, data_sha256=trained_on), tmp_path)
    assert stale_adapter(registry.get("tuned"), tmp_path) is None
    data.write_text('{"messages": [{"role": "user", "content": "new row"}]}\n')
    assert "tuned: its adapter was trained on data sha256 " + trained_on[:12] in stale_adapter(registry.get("tuned"),
                                                                                              tmp_path)
    raw = _raw(tmp_path, data_sha256=trained_on)
    raw["models"][1]["recipe"] = {**RECIPE, "datasets": [{"format": "sharegpt", "path": "mlabonne/FineTome-100k"}]}
    assert stale_adapter(_parse(raw, tmp_path).get("tuned"), tmp_path) is None  # a Hub dataset: not hashable here


# ---------------------------------------------------------------- the pool's riders (stand-in models)

UNIT = 100


class Model:
    def __init__(self, name: str, closed: list[str]):
        self.name, self._closed = name, closed

    def close(self) -> None:
        self._closed.append(self.name)


def _adapter(pool: ModelPool, closed: list[str], base: str = "base", adapter: str = "tuned"):
    """What the engine does for an adapter entry: hold the base, then the adapter as its rider."""
    outer = pool.use(base, lambda: 50 * UNIT // 100, lambda: Model(base, closed))
    model = outer.__enter__()
    inner = pool.use(adapter, lambda: 5 * UNIT // 100, lambda: Model(adapter, closed), parent=base)
    inner.__enter__()
    return model, lambda: (inner.__exit__(None, None, None), outer.__exit__(None, None, None))


def test_a_base_and_its_adapter_count_the_base_once_and_unload_rider_first():
    pool, closed = ModelPool(budget_bytes=UNIT, queue_timeout_s=5), []
    _, leave = _adapter(pool, closed)
    leave()
    assert pool.loaded_ids() == ["base", "tuned"] and pool.used_bytes() == 55
    with pool.use("other", lambda: 60 * UNIT // 100, lambda: Model("other", closed)):
        assert closed == ["tuned", "base"] and pool.loaded_ids() == ["other"]
    pool.close()
    _, leave = _adapter(pool, closed)
    leave()
    closed.clear()
    pool.close()
    assert closed == ["tuned", "base"]


def test_an_idle_adapter_alone_can_make_room_and_its_base_stays():
    pool, closed = ModelPool(budget_bytes=UNIT, queue_timeout_s=5), []
    _, leave = _adapter(pool, closed)
    leave()
    with pool.use("base", lambda: 50, lambda: Model("base", closed)):  # the base in use, its adapter idle
        with pool.use("small", lambda: 48 * UNIT // 100, lambda: Model("small", closed)):
            assert closed == ["tuned"] and pool.loaded_ids() == ["base", "small"]


def test_a_base_is_not_unloaded_while_its_adapter_answers():
    pool, closed = ModelPool(budget_bytes=UNIT, queue_timeout_s=5), []
    _, leave = _adapter(pool, closed)
    with pytest.raises(Busy):
        with pool.use("other", lambda: 60 * UNIT // 100, lambda: Model("other", closed)):
            pass
    assert closed == [] and pool.users("base") == 1 and pool.users("tuned") == 1
    done = threading.Event()

    def other() -> None:
        with pool.use("other", lambda: 60 * UNIT // 100, lambda: Model("other", closed)):
            done.set()

    leave()
    thread = threading.Thread(target=other)
    thread.start()
    thread.join(5)
    assert done.is_set() and closed == ["tuned", "base"]
