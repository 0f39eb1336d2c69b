"""Install llama-cpp-python compiled for this CPU, never with instructions a VM may forbid, then self-check it.

Why not the default build: it compiles llama.cpp with -march=native, so on Intel VMs that list AMX in
CPUID but do not enable its tile state the AMX kernels die with SIGILL ("tilezero"). Why not
llama.cpp's runtime dispatch (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS): its x86 variant score reads
CPUID alone (`if (!is.AMX_INT8()) return 0`), never asks the OS, so it would choose the AMX variant on
those same VMs, and it compiles ~10 copies of the CPU backend (far longer on 2 cores).

So: GGML_NATIVE=OFF, AMX always off, and one GGML_<EXT>=ON per extension /proc/cpuinfo lists
(`--profile host`, the default), or the x86-64-v3 baseline (AVX2/FMA/F16C/BMI2) that every x86 server of
the last decade runs (`--profile portable`, for images built on one machine and run on another).
pip's wheel cache does not know the CPU, so the wheel is built with that cache off into
`$IRIS_WHEEL_CACHE/<version>-<profile>-<hash of the flags>/` and installed from there: a wheel built for
one CPU is never picked up on another. An installed build whose compiled-in features already match is
kept. Afterwards `serving.selfcheck` generates a few tokens in a child process; a crash stops here with
the cause and the fix. Standard library only: this runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from serving.cpu import cpu_flags, cpu_model  # noqa: E402
from serving.selfcheck import parse_system_info, run_selfcheck  # noqa: E402

PACKAGE = "llama-cpp-python"
# GGML option -> (the /proc/cpuinfo flags it needs, the name llama_print_system_info() reports it by)
EXTENSIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "GGML_SSE42": (("sse4_2",), None),  # not reported on its own
    "GGML_AVX": (("avx",), "AVX"),
    "GGML_AVX2": (("avx2",), "AVX2"),
    "GGML_FMA": (("fma",), "FMA"),
    "GGML_F16C": (("f16c",), "F16C"),
    "GGML_BMI2": (("bmi2",), "BMI2"),
    "GGML_AVX_VNNI": (("avx_vnni",), "AVX_VNNI"),
    "GGML_AVX512": (("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"), "AVX512"),
    "GGML_AVX512_VBMI": (("avx512vbmi",), "AVX512_VBMI"),
    "GGML_AVX512_VNNI": (("avx512_vnni",), "AVX512_VNNI"),
    "GGML_AVX512_BF16": (("avx512_bf16",), "AVX512_BF16"),
}
PORTABLE = ("GGML_SSE42", "GGML_AVX", "GGML_AVX2", "GGML_FMA", "GGML_F16C", "GGML_BMI2")  # x86-64-v3
# LLAVA_BUILD is llama-cpp-python's multimodal library (libmtmd: the CLIP/vision and audio encoders). Iris serves
# text only, and llama_cpp loads that library only inside its image chat handlers (llama_chat_format, on first use),
# so it is not compiled: a shorter build on every first start and CI run.
ALWAYS_OFF = ("GGML_NATIVE", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16", "LLAVA_BUILD")
DEFAULT_CACHE = Path.home() / ".cache" / "iris" / "llama-cpp-wheels"


def enabled_extensions(flags: set[str], profile: str) -> list[str]:
    """GGML options to turn on: every extension the CPU has (host), or the x86-64-v3 set (portable)."""
    have = [name for name, (needs, _) in EXTENSIONS.items() if all(f in flags for f in needs)]
    if profile == "portable":
        missing = [name for name in PORTABLE if name not in have]
        if missing:
            raise SystemExit(f"error: this CPU lacks {', '.join(missing)}, needed by the portable (x86-64-v3) "
                             "profile; use --profile host")
        return list(PORTABLE)
    return have


def cmake_args(extensions: list[str]) -> str:
    """CMAKE_ARGS for llama-cpp-python's build: native, AMX and the multimodal library off, each listed extension
    on, the rest off."""
    args = [f"-D{name}=OFF" for name in ALWAYS_OFF]
    args += [f"-D{name}={'ON' if name in extensions else 'OFF'}" for name in EXTENSIONS]
    return " ".join(args)


def pinned_version(requirements: Path = REPO / "requirements.txt") -> str:
    """The llama-cpp-python version requirements.txt pins (the one source of that number)."""
    match = re.search(r"^llama-cpp-python==([\w.]+)", requirements.read_text(), re.MULTILINE)
    if not match:
        raise SystemExit(f"error: {requirements} does not pin {PACKAGE}==<version>")
    return match.group(1)


def wheel_dir(cache: Path, version: str, profile: str, args: str) -> Path:
    """Where the wheel for exactly these flags lives: the flags are part of the key."""
    return cache / f"{version}-{profile}-{hashlib.sha256(args.encode()).hexdigest()[:12]}"


def installed(python: str) -> tuple[str | None, dict[str, bool]]:
    """(version, compiled-in features) of the llama_cpp that `python` imports, or (None, {})."""
    code = ("import json, llama_cpp; print(json.dumps([llama_cpp.__version__, "
            "llama_cpp.llama_print_system_info().decode()]))")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        return None, {}
    version, info = json.loads(done.stdout.strip().splitlines()[-1])
    return version, parse_system_info(info)


def matches(features: dict[str, bool], extensions: list[str]) -> bool:
    """Whether a build's reported features are exactly the ones asked for (and no AMX)."""
    wanted = {EXTENSIONS[name][1] for name in extensions} - {None}
    reported = {name for _, (_, name) in EXTENSIONS.items() if name and features.get(name)}
    return reported == wanted and not any(features.get(f"AMX_{k}") for k in ("INT8", "BF16", "TILE"))


def build_wheel(version: str, args: str, target: Path, python: str) -> Path:
    """Compile llama-cpp-python with `args` into `target` (pip's cache off), return the wheel."""
    env = {**os.environ, "CMAKE_ARGS": args, "FORCE_CMAKE": "1",
           "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    print(f"building {PACKAGE}=={version} for this CPU (5-10 min on 2 cores)\n  CMAKE_ARGS={args}", flush=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([python, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir", "--no-binary", PACKAGE,
                        "-w", tmp, f"{PACKAGE}=={version}"], env=env, check=True)
        built = next(Path(tmp).glob("llama_cpp_python-*.whl"))
        target.mkdir(parents=True, exist_ok=True)
        shutil.move(str(built), target / built.name)
    (target / "build.json").write_text(json.dumps({"cmake_args": args, "seconds": round(time.monotonic() - start),
                                                   "cpu": cpu_model()}, indent=1))
    return target / built.name


def install(args: argparse.Namespace) -> None:
    version = pinned_version()
    extensions = enabled_extensions(cpu_flags(), args.profile)
    flags = cmake_args(extensions)
    have_version, features = installed(args.python)
    if not args.rebuild and have_version == version and matches(features, extensions):
        print(f"{PACKAGE} {version} already built for this CPU ({', '.join(extensions)})")
        return
    target = wheel_dir(Path(args.cache), version, args.profile, flags)
    wheels = sorted(target.glob("llama_cpp_python-*.whl"))
    wheel = wheels[-1] if wheels and not args.rebuild else build_wheel(version, flags, target, args.python)
    print(f"installing {wheel}", flush=True)
    pip = [args.python, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--force-reinstall", "--no-deps", str(wheel)], check=True)
    subprocess.run([*pip, str(wheel)], check=True)  # its dependencies (numpy, jinja2, diskcache, ...)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("host", "portable"), default=os.environ.get("IRIS_LLAMA_PROFILE", "host"),
                        help="host: every extension this CPU lists; portable: x86-64-v3 (default $IRIS_LLAMA_PROFILE or host)")
    parser.add_argument("--rebuild", action="store_true", help="build again even if a matching wheel exists")
    parser.add_argument("--check-only", action="store_true", help="only run the self-check")
    parser.add_argument("--print-cmake-args", action="store_true",
                        help="print the CMAKE_ARGS of --profile for this CPU and exit (e.g. for a Space variable)")
    parser.add_argument("--cache", default=os.environ.get("IRIS_WHEEL_CACHE", str(DEFAULT_CACHE)),
                        help="wheel cache folder (default $IRIS_WHEEL_CACHE or ~/.cache/iris/llama-cpp-wheels)")
    parser.add_argument("--python", default=sys.executable, help="interpreter to install into and check")
    args = parser.parse_args(argv)
    if args.print_cmake_args:
        print(cmake_args(enabled_extensions(cpu_flags(), args.profile)))
        return 0
    if not args.check_only:
        install(args)
    result = run_selfcheck(python=args.python)
    if not result.ok:
        print(f"error: {result.message}", file=sys.stderr)
        return 1
    print(f"llama.cpp self-check passed: {result.message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
