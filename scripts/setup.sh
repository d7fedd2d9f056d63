#!/usr/bin/env bash
# Set up a fresh machine for fusedrnn: install only what is missing.
# A torch that is already installed is never replaced; with none, the CPU-sized
# torch==2.13.0 is installed explicitly (a bare "torch" would pull a CUDA build
# of several GB).  Usage: scripts/setup.sh [extras], e.g. scripts/setup.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  "$PYTHON" -m pip install --quiet "torch==2.13.0"
fi
extras=${1:-}
"$PYTHON" -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
