#!/usr/bin/env bash
# The main job in one command: sets up .venv if needed (setup.sh), then runs the default experiment
# (`snakemake --cores all`) -> results/report/. Arguments go to Snakemake: `bash run.sh -n` shows what would
# run, `bash run.sh --configfile my.yaml` runs another experiment.
set -euo pipefail
cd "$(dirname "$0")"
.venv/bin/python -c 'import torch, transformers, datasets, snakemake, tritonclient.grpc, pytriton' 2>/dev/null \
  || bash setup.sh
# the venv's bin first, as activation would: Snakemake and the jobs it starts use the venv's tools
export PATH="$PWD/.venv/bin:$PATH"
# a dotted --config key or an unquoted mapping: Snakemake answers with a bare traceback, so name it here first
.venv/bin/python -m workflow_scripts.command_line "$@" || exit 2
exec snakemake --cores all "$@"
