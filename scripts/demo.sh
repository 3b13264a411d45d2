#!/usr/bin/env bash
# Set up (if needed), then run the main job end to end on the embedded defaults. Extra arguments go to `photoseek demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/photoseek demo "$@"
