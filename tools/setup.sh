#!/usr/bin/env bash
# Set up a fresh machine for fusedrnn: install only what is missing.
# A torch that is already installed is never replaced (pyproject.toml asks for torch>=2.11, which
# pip leaves alone once satisfied); with none, the CPU-sized torch==2.13.0 is installed explicitly
# (a bare "torch" would pull a CUDA build of several GB).  Usage: tools/setup.sh [extras], e.g.
# tools/setup.sh dev
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PIP=("$PYTHON" -m pip install --quiet --disable-pip-version-check)
if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  "${PIP[@]}" "torch==2.13.0"
fi
extras=${1:-}
"${PIP[@]}" -e ".${extras:+[$extras]}"
# With Triton (the triton and dev extras): the newest Triton the installed torch allows, so that CI
# tests the newest (pip keeps an older one that satisfies triton>=3.6). A CUDA torch pins its own
# Triton, which stays; naming torch at its installed version keeps torch as it is.
if [[ ",$extras," == *,triton,* || ",$extras," == *,dev,* ]]; then
  torch_version=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('torch'))" 2>/dev/null || true)
  "${PIP[@]}" --upgrade triton ${torch_version:+"torch==$torch_version"}
fi
