#!/usr/bin/env bash
# One command on a fresh machine: a virtual environment in .venv with inferbench and everything it needs
# (Snakemake and its SLURM plugin, PyTorch, transformers, datasets, Triton client and server, plotting).
# Then: source .venv/bin/activate
# `bash setup.sh --dynamo` adds the optional NVIDIA Dynamo serving framework (engine dynamo-grpc).
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in
  --dynamo) extras=test,dynamo ;;
  "") extras=test ;;
  *) echo "usage: bash setup.sh [--dynamo]" >&2; exit 2 ;;
esac
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "inferbench needs Python >= 3.10" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[$extras]"
if [ "$extras" = test,dynamo ]; then
  # ai-dynamo requires aisimulate, a PyPI stub that downloads from elsewhere (only Dynamo's planner uses it):
  # install it without its dependencies; the extra `dynamo` brought what the frontend and the worker import.
  .venv/bin/python -m pip install --quiet --no-deps ai-dynamo==1.6.1
  .venv/bin/python -c 'import dynamo.frontend, dynamo.llm; print("NVIDIA Dynamo ready")'
fi
.venv/bin/python -c 'import torch, transformers, datasets, snakemake, tritonclient.grpc, pytriton; print("inferbench environment ready: torch", torch.__version__)'
