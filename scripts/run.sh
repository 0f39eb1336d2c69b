#!/usr/bin/env bash
# Set up and start the app on a fresh machine: run-time deps, the offline demo models if absent, then app.py.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -r requirements.txt
if [ ! -f models/demo/demo-support-Q4_K_M.gguf ]; then
  python3 -m pip install -q torch==2.13.0 && python3 -m pip install -q -r requirements-train.txt
  python3 -m training build-demo
fi
exec python3 app.py "$@"
