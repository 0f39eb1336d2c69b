"""How many CPUs this process may really use, how much memory it may take, and what the CPU is.

A container (a Hugging Face Space, a CI runner) usually reports the host's cores through
`os.cpu_count()`; llama.cpp with that many threads oversubscribes the few cores the cgroup
allows and slows down. This module reads the cgroup limits and the affinity mask instead.
It also names the CPU and its flags from /proc/cpuinfo (for the llama.cpp build and benchmark reports).
It only reads; it knows nothing of models.
"""

from __future__ import annotations

import math
import os
import platform
import re
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str, cpuinfo: str | None) -> str | None:
    """The first processor's `name` line of a /proc/cpuinfo text (this machine's by default)."""
    if cpuinfo is None:
        cpuinfo = CPUINFO.read_text() if CPUINFO.exists() else ""
    match = re.search(rf"^{name}\s*:(.*)$", cpuinfo, re.MULTILINE)
    return match.group(1).strip() if match else None


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """The CPU's feature flags (`avx2`, `amx_int8`, ...)."""
    return set((_cpuinfo_field("flags", cpuinfo) or "").split())


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name, for reports."""
    return _cpuinfo_field("model name", cpuinfo) or platform.processor() or "unknown"


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by the cgroup quota (v2 `cpu.max` or v1 cfs files), None when unlimited."""
    v2 = root / "cpu.max"
    try:
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (the host count where the mask is unavailable)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def usable_cpus(root: Path = CGROUP_ROOT) -> int:
    """Whole CPUs this process can run on at once: min(affinity, ceil(cgroup quota)), at least 1."""
    cpus = affinity_cpus()
    quota = cgroup_cpu_quota(root)
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def memory_limit_bytes(root: Path = CGROUP_ROOT) -> int:
    """Memory this process may use: the cgroup limit when set, else the machine's total."""
    for name in ("memory.max", "memory/memory.limit_in_bytes"):
        try:
            text = (root / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def process_rss_mib() -> float | None:
    """This process's resident memory now (VmRSS), MiB; None where /proc is not there."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            kb = next((int(line.split()[1]) for line in status if line.startswith("VmRSS:")), None)
    except OSError:
        return None
    return None if kb is None else kb / 1024
