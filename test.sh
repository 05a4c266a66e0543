#!/usr/bin/env bash
# The tests in one command, the one CI runs (.ci/run): sets up .venv if needed (setup.sh), then runs pytest.
# `bash test.sh --dynamo` sets up with the optional NVIDIA Dynamo (its tests are skipped without it); other
# arguments go to pytest (`bash test.sh tests/test_report.py -k summary`).
set -euo pipefail
cd "$(dirname "$0")"
setup_args=() imports=torch,transformers,datasets,snakemake,tritonclient.grpc,pytriton
if [ "${1:-}" = --dynamo ]; then
  setup_args=(--dynamo) imports=$imports,dynamo.frontend,dynamo.llm
  shift
fi
.venv/bin/python -c "import $imports" 2>/dev/null || bash setup.sh "${setup_args[@]}"
export PATH="$PWD/.venv/bin:$PATH"
exec python -m pytest -q "$@"
