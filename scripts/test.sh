#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite on the CPU. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The web page's test drives a real headless Chromium (Debian's chromium + chromium-driver).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "test: installing chromium and chromium-driver for the browser test"
    apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1; } \
      || echo "test: could not install chromium; the browser test will be skipped (see the summary)"
  else
    echo "test: chromium/chromedriver not found and cannot be installed here; the browser test will be skipped"
  fi
fi
export RAY_AUTH_MODE=disabled  # the tests start a throwaway local Ray
exec .venv/bin/python -m pytest "$@"
