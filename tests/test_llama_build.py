"""The llama.cpp build Iris installs runs on this CPU, and the set-up script says so clearly when one would not.

Generation runs in a child process (a SIGILL there is a message, not a dead test run); a crashing
build is simulated by an interpreter that kills itself with SIGILL, an AMX build by one that reports
AMX_INT8 = 1. The flag logic is checked on /proc/cpuinfo texts of an AMX Xeon and an AVX2-only host.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.install_llama_cpp import EXTENSIONS, cmake_args, enabled_extensions, installed, matches, wheel_dir
from serving.cpu import cpu_flags
from serving.selfcheck import SELFCHECK_MODEL, parse_system_info, run_selfcheck

REPO = Path(__file__).resolve().parent.parent
XEON_AMX = ("flags\t\t: fpu sse4_2 avx avx2 fma f16c bmi2 avx512f avx512cd avx512vl avx512dq avx512bw avx512vbmi "
            "avx512_vnni avx512_bf16 avx_vnni amx_bf16 amx_tile amx_int8\n")
AVX2_ONLY = "flags\t\t: fpu sse4_2 avx avx2 fma f16c bmi2\n"


def fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "python"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(0o755)
    return str(script)


def test_generation_in_a_child_process_exits_0_with_text():
    result = run_selfcheck()
    assert result.ok, result.message
    assert result.text.strip() and "8 tokens" in result.message
    assert not any(result.features.get(f) for f in ("AMX_INT8", "AMX_BF16"))


def test_demo_model_with_256_wide_rows_generates_in_a_child(demo_paths):
    result = run_selfcheck(demo_paths["demo-support"])
    assert result.ok, result.message


def test_installed_build_uses_only_what_this_cpu_has():
    version, features = installed(sys.executable)
    assert version is not None
    cpu = cpu_flags()
    for option, (needs, reported) in EXTENSIONS.items():
        if reported and features.get(reported):
            assert all(flag in cpu for flag in needs), f"build uses {reported}, this CPU lacks {needs}"
    assert not features.get("AMX_INT8")


def test_setup_script_reports_a_crashing_build_clearly(tmp_path):
    sigill = fake_python(tmp_path, "kill -ILL $$")
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "install_llama_cpp.py"), "--check-only",
                           "--python", sigill], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "SIGILL (illegal instruction)" in done.stderr
    assert "scripts/install_llama_cpp.py --rebuild" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_build_with_amx_compiled_in_is_refused(tmp_path):
    report = json.dumps({"system_info": "CPU : AVX2 = 1 | AMX_INT8 = 1 | ", "text": "hi", "n_tokens": 8})
    amx = fake_python(tmp_path, f"echo '{report}'")
    result = run_selfcheck(python=amx)
    assert not result.ok and "compiled with AMX_INT8" in result.message


def test_missing_model_is_an_error_not_a_crash(tmp_path):
    result = run_selfcheck(tmp_path / "none.gguf")
    assert not result.ok and "exit 1" in result.message


def test_amx_is_never_enabled_even_when_cpuid_lists_it():
    args = cmake_args(enabled_extensions(cpu_flags(XEON_AMX), "host"))
    for name in ("GGML_NATIVE", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16", "LLAVA_BUILD"):
        assert f"-D{name}=OFF" in args
    assert "-DGGML_AVX512=ON" in args and "-DGGML_AVX512_VNNI=ON" in args and "-DGGML_AVX_VNNI=ON" in args


def test_extensions_the_cpu_lacks_stay_off():
    args = cmake_args(enabled_extensions(cpu_flags(AVX2_ONLY), "host"))
    assert "-DGGML_AVX2=ON" in args and "-DGGML_FMA=ON" in args
    assert "-DGGML_AVX512=OFF" in args and "-DGGML_AVX512_BF16=OFF" in args


def test_portable_profile_is_x86_64_v3_on_any_host():
    assert enabled_extensions(cpu_flags(XEON_AMX), "portable") == enabled_extensions(cpu_flags(AVX2_ONLY), "portable")
    with pytest.raises(SystemExit, match="lacks GGML_AVX2"):
        enabled_extensions(cpu_flags("flags\t: fpu sse4_2 avx\n"), "portable")


def test_wheel_cache_key_holds_the_flags(tmp_path):
    xeon = cmake_args(enabled_extensions(cpu_flags(XEON_AMX), "host"))
    avx2 = cmake_args(enabled_extensions(cpu_flags(AVX2_ONLY), "host"))
    assert wheel_dir(tmp_path, "0.3.36", "host", xeon) != wheel_dir(tmp_path, "0.3.36", "host", avx2)
    assert wheel_dir(tmp_path, "0.3.36", "host", xeon) == wheel_dir(tmp_path, "0.3.36", "host", xeon)


def test_a_build_matches_only_its_own_flags():
    features = parse_system_info("CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | "
                                 "AVX512 = 0 | OPENMP = 1 |")
    assert matches(features, enabled_extensions(cpu_flags(AVX2_ONLY), "host"))
    assert not matches(features, enabled_extensions(cpu_flags(XEON_AMX), "host"))
    assert not matches({**features, "AMX_INT8": True}, enabled_extensions(cpu_flags(AVX2_ONLY), "host"))


def test_selfcheck_model_rows_are_multiples_of_256():
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(SELFCHECK_MODEL)
    q4k = [t for t in reader.tensors if t.tensor_type.name == "Q4_K"]
    assert q4k and all(int(t.shape[0]) % 256 == 0 for t in q4k)
