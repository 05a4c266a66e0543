#!/usr/bin/env bash
# One command on a fresh machine: a virtual environment in .venv with inferbench and everything it needs
# (Snakemake and its SLURM plugin, PyTorch, transformers, datasets, Triton client and server, plotting).
# Then: source .venv/bin/activate
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "inferbench needs Python >= 3.10" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/python -c 'import torch, transformers, datasets, snakemake, tritonclient.grpc, pytriton; print("inferbench environment ready: torch", torch.__version__)'
