"""Does the installed llama.cpp build run on this CPU? Asked in a child process, so a crash is a message.

llama.cpp compiled for instructions this machine may not execute dies with SIGILL the first time
a kernel uses them (AMX on VMs that advertise it in CPUID but do not enable its tile state; an
AVX-512 wheel copied to an AVX2 host). Only some kernels reach such code: Q4_K matrices whose
rows are multiples of 256 do, so the check generates a few tokens with `SELFCHECK_MODEL`, a tiny
random Q4_K_M Llama of that shape, and reads `llama_print_system_info()`. The set-up scripts run
it right after installing, the app once before serving. Only the standard library is imported
here; llama_cpp is imported in the child alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SELFCHECK_MODEL = Path(__file__).resolve().parent / "assets" / "selfcheck-Q4_K_M.gguf"
"""1 layer, hidden 256, ffn 512, 1,280-token vocab, Q4_K_M (`python -m training random-model --like selfcheck`)."""
FORBIDDEN_FEATURES = ("AMX_INT8", "AMX_BF16", "AMX_TILE")
"""Compiled-in features a portable Iris build never has (the hypervisors we run on may forbid them)."""
FIX = ("Rebuild it for this CPU: `python3 scripts/install_llama_cpp.py --rebuild` (the README's set-up "
       "commands do this), which compiles without AMX and with only the extensions /proc/cpuinfo lists.")
_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class SelfCheck:
    """What the child reported: ok, a one-paragraph reason when not, and the build's features."""

    ok: bool
    message: str
    features: dict[str, bool]
    text: str = ""


def parse_system_info(info: str) -> dict[str, bool]:
    """`"CPU : AVX = 1 | AVX2 = 1 | ..."` -> {"AVX": True, "AVX2": True, ...} (every backend's list merged)."""
    features: dict[str, bool] = {}
    for part in info.replace("\n", "|").split("|"):
        name, sep, value = part.rpartition("=")
        name = name.split(":")[-1].strip()
        if sep and name and value.strip() in ("0", "1"):
            features[name] = features.get(name, False) or value.strip() == "1"
    return features


def explain(returncode: int, stderr: str) -> str:
    """A sentence naming why the child failed and what to do."""
    if returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else f"signal {sig}"
        if sig == signal.SIGILL:
            return (f"llama.cpp died with {name} (illegal instruction): the installed build uses CPU "
                    f"instructions this machine does not allow (often AMX on a VM, or a wheel built on another "
                    f"CPU and reused from a cache). {FIX}")
        return f"llama.cpp died with {name} while generating. {FIX}"
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
    return f"the llama.cpp self-check failed (exit {returncode}): {tail}"


def run_selfcheck(model: Path = SELFCHECK_MODEL, python: str = sys.executable,
                  timeout_s: float = _TIMEOUT_S) -> SelfCheck:
    """Run the check in a fresh interpreter (`python`) and interpret how it ended."""
    cmd = [python, "-m", "serving.selfcheck", "--child", str(model)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                                    os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return SelfCheck(False, f"the llama.cpp self-check did not finish within {timeout_s:.0f} s.", {})
    if done.returncode != 0:
        return SelfCheck(False, explain(done.returncode, done.stderr), {})
    report = json.loads(done.stdout.strip().splitlines()[-1])
    features = parse_system_info(report["system_info"])
    bad = [name for name in FORBIDDEN_FEATURES if features.get(name)]
    if bad:
        return SelfCheck(False, f"the installed llama.cpp was compiled with {', '.join(bad)}, which this "
                                f"project's hosts may forbid (it generated here, but can crash on the next VM). "
                                f"{FIX}", features, report["text"])
    if not report["text"]:
        return SelfCheck(False, "the llama.cpp self-check generated no text.", features)
    return SelfCheck(True, f"llama.cpp generated {report['n_tokens']} tokens", features, report["text"])


def _child(model: str, n_tokens: int = 8) -> None:
    """Generate `n_tokens` greedily and print one JSON line (text, token count, system info)."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace")
    llm = llama_cpp.Llama(model_path=model, n_ctx=64, n_threads=2, verbose=False)
    out = llm.create_completion("Hello", max_tokens=n_tokens, temperature=0.0)
    text = out["choices"][0]["text"]
    llm.close()
    print(json.dumps({"system_info": info, "text": text or "(empty)", "n_tokens": out["usage"]["completion_tokens"]}))


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        _child(argv[1])
        return 0
    result = run_selfcheck(Path(argv[0]) if argv else SELFCHECK_MODEL)
    print(("ok: " if result.ok else "FAILED: ") + result.message, file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
