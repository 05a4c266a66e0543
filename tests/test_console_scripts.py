"""run.sh and test.sh: set up only when .venv is missing or incomplete, then run Snakemake / pytest.

A fake setup.sh and fake .venv tools in a copy of the two scripts record what was called; nothing is installed."""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FAKE_SETUP = """#!/usr/bin/env bash
echo "setup $*" >> calls
mkdir -p .venv/bin
for tool in python snakemake; do
  printf '#!/usr/bin/env bash\\necho "%s $*" >> "%s/calls"\\n' "$tool" "$PWD" > .venv/bin/$tool
  chmod +x .venv/bin/$tool
done
"""


@pytest.fixture
def checkout(tmp_path):
    for script in ("run.sh", "test.sh"):
        shutil.copy(ROOT / script, tmp_path / script)
    (tmp_path / "setup.sh").write_text(FAKE_SETUP)
    return tmp_path


def _run(checkout, *args):
    subprocess.run(["bash", *args], cwd=checkout, check=True, capture_output=True, text=True)
    calls = (checkout / "calls").read_text().splitlines()
    (checkout / "calls").unlink()
    return [c for c in calls if not c.startswith("python -c")]


def test_run_sets_up_once_then_runs_snakemake(checkout):
    check = "python -m workflow_scripts.command_line"  # the --config entries, before Snakemake starts
    assert _run(checkout, "run.sh", "-n") == ["setup ", f"{check} -n", "snakemake --cores all -n"]
    assert _run(checkout, "run.sh") == [check, "snakemake --cores all"]


def test_test_sets_up_with_dynamo_and_passes_pytest_arguments(checkout):
    assert _run(checkout, "test.sh", "--dynamo", "tests/x.py") == ["setup --dynamo", "python -m pytest -q tests/x.py"]
    assert _run(checkout, "test.sh") == ["python -m pytest -q"]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "INFERBENCH_REAL_SLURM=1 bash test.sh --dynamo" in ci
    readme = (ROOT / "README.md").read_text()
    assert "bash run.sh" in readme and "bash test.sh" in readme
