"""A step that fails before it has set up logging (while importing its modules) still leaves its error in the
job's log, for every `script:` rule."""
import ast
import os
import re
import subprocess
import sys

from conftest import REPO


def test_a_script_failing_at_import_writes_its_error_to_the_jobs_log(tmp_path):
    # A real step script through Snakemake; its third-party import (torch) fails as if not installed.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "torch.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    (tmp_path / "Snakefile").write_text(
        "rule accuracy:\n"
        "    output: 'checked.txt'\n"
        "    log: 'logs/accuracy.log'\n"
        f"    script: {str(REPO / 'workflow_scripts' / 'accuracy.py')!r}\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), str(REPO)])}
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(tmp_path / "Snakefile"), "--directory",
                          str(tmp_path), "--cores", "1", "--quiet"], env=env, capture_output=True, text=True)
    assert run.returncode != 0
    log = (tmp_path / "logs" / "accuracy.log").read_text()
    assert "ModuleNotFoundError: No module named 'torch'" in log and "Traceback" in log


def test_every_script_rule_captures_errors_before_any_other_import():
    scripts = sorted(set(re.findall(r'script:\s*\n?\s*"\.\./(workflow_scripts/[^"]+)"',
                                    "".join(p.read_text() for p in (REPO / "rules").glob("*.smk")))))
    assert len(scripts) >= 15
    for script in scripts:
        body = ast.parse((REPO / script).read_text()).body
        body = body[1:] if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body
        first, second = ast.unparse(body[0]), ast.unparse(body[1])
        assert (first, second) == ("from workflow_scripts.job_log import capture_errors",
                                   "capture_errors(globals())"), script
