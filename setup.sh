#!/usr/bin/env bash
# Set-up on a fresh machine: a virtual environment in .venv with inferbench and everything it needs
# (Snakemake and its SLURM plugin, PyTorch, transformers, datasets, Triton client and server, plotting).
# run.sh and test.sh call it when .venv is missing or incomplete; to use the tools by hand afterwards:
# source .venv/bin/activate
# `bash setup.sh --dynamo` adds the optional NVIDIA Dynamo serving framework (engine dynamo-grpc).
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-}" in
  --dynamo) extras=test,dynamo ;;
  "") extras=test ;;
  *) echo "usage: bash setup.sh [--dynamo]" >&2; exit 2 ;;
esac
step() { echo "setup: $*"; }
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "inferbench needs Python >= 3.10" >&2; exit 1; }
if [ -x .venv/bin/python ]; then
  step "using the existing virtual environment .venv"
else
  step "creating the virtual environment .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi
step "upgrading pip"
.venv/bin/python -m pip install --quiet --upgrade pip
# pip stays quiet (its progress bars run to thousands of lines); its errors still reach the console
step "installing inferbench with extras [$extras] and its dependencies (PyTorch, CUDA libraries, Triton):" \
  "several minutes on a fresh machine, seconds when already installed"
.venv/bin/python -m pip install --quiet -e ".[$extras]"
if [ "$extras" = test,dynamo ]; then
  # ai-dynamo requires aisimulate, a PyPI stub that downloads from elsewhere (only Dynamo's planner uses it):
  # install it without its dependencies; the extra `dynamo` brought what the frontend and the worker import.
  step "installing NVIDIA Dynamo (ai-dynamo, without its planner's dependencies)"
  .venv/bin/python -m pip install --quiet --no-deps ai-dynamo==1.6.1
  .venv/bin/python -c 'import dynamo.frontend, dynamo.llm; print("setup: NVIDIA Dynamo ready")'
fi
step "checking that the main libraries import"
.venv/bin/python -c 'import torch, transformers, datasets, snakemake, tritonclient.grpc, pytriton; print("setup: inferbench environment ready: torch", torch.__version__)'
