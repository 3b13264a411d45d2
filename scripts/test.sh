#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite on the CPU. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RAY_AUTH_MODE=disabled  # the tests start a throwaway local Ray
exec .venv/bin/python -m pytest "$@"
