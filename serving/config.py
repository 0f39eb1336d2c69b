"""Serving settings: the knobs of the serving layer, read from the environment.

Every field has a default that works on a small CPU box and an `IRIS_*` variable to
override it (see `ServingSettings.from_env`). Nothing here loads or downloads anything.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from serving.context.drafts import MAX_DRAFTS
from serving.cpu import memory_limit_bytes, usable_cpus

ENV_PREFIX = "IRIS_"
TEMPLATE_DATE = "26 Jul 2024"
"""The chat template's `date_string` everywhere Iris renders a fixed date: training text, the exporter's
parity checks and serving (so a fine-tune sees the date it was trained with). The one copy in Python."""


class ServingSettings(BaseModel):
    """How the engine resolves, loads, pools and serialises models."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    registry_path: Path | None = None
    """Registry file; None means the repo's `model_registry.yaml` (or $IRIS_REGISTRY)."""
    ram_budget_mb: float = Field(default_factory=lambda: round(memory_limit_bytes() * 0.6 / 2**20), gt=0)
    """Memory the loaded-model pool may use (weights + KV cache), in MiB; default 60% of the limit."""
    max_queue: int = Field(4, ge=0, le=1000)
    """Requests allowed to wait for a busy model; one more gets `Busy` at once."""
    queue_timeout_s: float = Field(120.0, gt=0)
    """Longest a request waits for its model before it gets `Busy`."""
    n_threads: int | None = Field(None, ge=1, le=512)
    """llama.cpp threads; None means the CPUs this process may really use."""
    n_batch: int = Field(256, ge=8, le=8192)
    """Most tokens one llama.cpp decode step holds (answer tokens of every slot plus prompt chunks)."""
    slots: int = Field(4, ge=1, le=64)
    """Conversations one loaded model decodes together; each keeps its own KV cache."""
    prefill_chunk: int = Field(256, ge=1, le=8192)
    """Most prompt tokens read per step; fewer while steps take over 1 s, so others' next tokens never wait long
    behind a long prompt (a cancel stops a step at once)."""
    flash_attn: Literal["off", "on", "auto"] = "off"
    """llama.cpp's flash attention for the CPU. Off by default: measured, its CPU kernel slows every step next to a
    long cached prefix (a grounded persona's 1,500 tokens: TTFT 1.59-1.84x the short persona's on the 1B shape with
    it, 1.11-1.20x without), for at most 10% on short prompts (benchmarks/RESULTS-grounding.md). "auto" is
    llama.cpp's default."""
    max_drafts: int = Field(4, ge=1, le=MAX_DRAFTS)
    """Most drafts of one answer a persona's `drafts` may ask for, and never more than the model's free slots when
    the answer starts (1 turns drafts off: every answer streams as it is written)."""
    kv_ram_mb: float = Field(256.0, ge=0)
    """RAM for KV states of conversations pushed out of their slot, per model (restored when they return)."""
    cache_dir: Path | None = None
    """Hugging Face cache folder; None means huggingface_hub's default ($HF_HUB_CACHE)."""
    hub_endpoint: str | None = None
    """Hub URL; None means huggingface_hub's default ($HF_ENDPOINT or https://huggingface.co)."""
    hub_probe_timeout_s: float = Field(5.0, gt=0)
    """How long the catalog waits for the Hub when checking an uncached entry."""
    max_message_chars: int = Field(8000, ge=1)
    """Longest single message the engine accepts."""
    max_history_messages: int = Field(200, ge=2)
    """Most messages (system prompt included) one request may carry; checked before any tokenization."""
    max_history_chars: int = Field(100_000, ge=1)
    """Most characters all messages of one request may hold together; checked before any tokenization."""
    template_date: str | None = TEMPLATE_DATE
    """`date_string` given to the chat template (the date training rendered with); None = today."""
    log_level: str = "INFO"
    """Python logging level of the app."""
    browser_secret: SecretStr | None = None
    """Key of the conversations kept in visitors' browsers; fixed so a restart can still read them. None: a key
    made once and kept in `browser_secret_file()`."""

    @model_validator(mode="after")
    def _batch_holds_every_slot(self) -> "ServingSettings":
        if self.n_batch < self.slots:
            raise ValueError(f"n_batch ({self.n_batch}) must be at least slots ({self.slots}): every decode step "
                             "holds one token of each slot's answer; raise IRIS_N_BATCH or lower IRIS_SLOTS")
        return self

    def browser_secret_file(self) -> Path:
        """Where the made-once browser key lives when `browser_secret` is not set (beside the HF cache)."""
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "iris" / "browser-secret"

    def threads(self) -> int:
        """Threads for llama.cpp: the override, else the usable CPUs."""
        return self.n_threads or usable_cpus()

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "ServingSettings":
        """Settings from `IRIS_<FIELD>` variables (e.g. IRIS_RAM_BUDGET_MB=4096); unset ones keep defaults."""
        environ = os.environ if environ is None else environ
        values = {
            name: environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if environ.get(ENV_PREFIX + name.upper())
        }
        if "registry_path" not in values and environ.get("IRIS_REGISTRY"):
            values["registry_path"] = environ["IRIS_REGISTRY"]
        return cls(**values)
