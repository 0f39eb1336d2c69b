"""CPU and memory limits are read from the cgroup files, not from the host's core count."""

import os

import pytest

from serving.config import ServingSettings
from serving.cpu import affinity_cpus, cgroup_cpu_quota, memory_limit_bytes, usable_cpus


def test_cgroup_v2_quota_caps_the_thread_count(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
    assert usable_cpus(tmp_path) == min(affinity_cpus(), 2)


def test_unlimited_quota_falls_back_to_the_affinity_mask(tmp_path):
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    assert usable_cpus(tmp_path) == len(os.sched_getaffinity(0))


def test_cgroup_v1_quota_and_memory_limit(tmp_path):
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("100000")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000")
    (tmp_path / "memory.max").write_text(str(3 * 2**30))
    assert usable_cpus(tmp_path) == 1
    assert memory_limit_bytes(tmp_path) == 3 * 2**30


def test_settings_from_env_and_thread_override():
    settings = ServingSettings.from_env({"IRIS_RAM_BUDGET_MB": "512", "IRIS_MAX_QUEUE": "2", "IRIS_N_THREADS": "3"})
    assert (settings.ram_budget_mb, settings.max_queue, settings.threads()) == (512, 2, 3)
    assert ServingSettings(ram_budget_mb=512).threads() == usable_cpus()


def test_cpu_model_and_flags_come_from_the_first_processor():
    from serving.cpu import cpu_flags, cpu_model

    text = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 amx_int8\n\nprocessor\t: 1\nmodel name\t: Other\n"
    assert cpu_model(text) == "AMD EPYC" and cpu_flags(text) == {"fpu", "avx2", "amx_int8"}
    assert cpu_flags("") == set() and cpu_model("")  # no cpuinfo: no flags, still a name


def test_process_rss_grows_with_what_the_process_holds():
    from serving.cpu import process_rss_mib

    before = process_rss_mib()
    held = bytearray(64 * 2**20)  # 64 MiB, touched
    held[::4096] = b"\1" * len(held[::4096])
    assert before and process_rss_mib() - before > 48
    del held


def test_flash_attention_setting_from_env_and_its_bad_values():
    assert ServingSettings().flash_attn == "off"  # measured faster next to a long cached prefix on the CPU
    assert ServingSettings.from_env({"IRIS_FLASH_ATTN": "auto"}).flash_attn == "auto"
    with pytest.raises(ValueError, match="flash_attn"):
        ServingSettings.from_env({"IRIS_FLASH_ATTN": "fast"})
