"""A step that fails before it has set up logging (while importing its modules) still leaves its error in the
job's log, for every `script:` rule."""
import ast
import json
import os
import re
import subprocess
import sys

import pytest
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
    entry = [node for node in body if isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"]
    assert [ast.unparse(node.body[0]) for node in entry] == ["run_step(globals(), run_job, main)"], script


def test_run_step_logs_then_places_once_and_a_jobs_error_lands_in_its_log(tmp_path):
    # A stand-in Snakemake job with a GPU: a one-slot plan (a stand-in card) makes placement log where it put
    # the job; the job logs, then fails.
    log = tmp_path / "job.log"
    plan = {"slots": [{"device": "0", "cores": sorted(os.sched_getaffinity(0)), "lock": str(tmp_path / "slot.lock")}],
            "threads_per_slot": 1, "cpu_only_cores": []}
    script = tmp_path / "step.py"
    script.write_text(
        "import logging, os\n"
        "from types import SimpleNamespace\n"
        "from workflow_scripts.step_io import run_step\n"
        f"snakemake = SimpleNamespace(log=[{str(log)!r}], resources=SimpleNamespace(gpu=1))\n"
        "def job(smk):\n"
        "    logging.getLogger('step').info('job sees CUDA_VISIBLE_DEVICES=%s', os.environ['CUDA_VISIBLE_DEVICES'])\n"
        "    raise RuntimeError('the step failed')\n"
        "def command_line():\n"
        "    raise AssertionError('a Snakemake job must not run the command line')\n"
        "run_step(globals(), job, command_line)\n")
    from workflow_scripts.placement import PLAN_VARIABLE
    env = {**os.environ, "PYTHONPATH": str(REPO), PLAN_VARIABLE: json.dumps(plan)}
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    assert run.returncode == 1
    text = log.read_text()
    assert text.count("placed on GPU 0") == 1
    assert text.index("placed on GPU 0") < text.index("job sees CUDA_VISIBLE_DEVICES=0")
    assert "RuntimeError: the step failed" in text and "Traceback" in text
    assert "RuntimeError: the step failed" in run.stderr  # the console still gets it too


def test_run_step_from_the_command_line_exits_with_its_code(monkeypatch):
    from workflow_scripts import step_io

    monkeypatch.setattr(step_io, "place_snakemake_job", lambda smk: pytest.fail("placed a command-line run"))
    with pytest.raises(SystemExit) as exit_:
        step_io.run_step({}, lambda smk: pytest.fail("ran the job"), lambda: 3)
    assert exit_.value.code == 3
    step_io.run_step({}, lambda smk: pytest.fail("ran the job"), lambda: None)  # 0: returns, no exit


def test_a_jobs_console_shows_progress_and_errors_while_native_output_stays_in_its_log(tmp_path):
    """What reaches Snakemake's console from a job: its progress lines and its error; what a native library or
    a child process writes to the job's stdout or stderr, and the job's ordinary log lines, go to its log only."""
    log = tmp_path / "job.log"
    code = (f"from workflow_scripts.step_io import setup_logging\nsetup_logging({str(log)!r})\n"
            "import logging, os, subprocess\n"
            "from workflow_scripts.progress import Progress\n"
            "os.write(2, b'native library noise\\n')\n"
            "import warnings; warnings.warn('a library warning')\n"
            "subprocess.run(['echo', 'a child process talking'])\n"
            "logging.getLogger('step').info('an ordinary log line')\n"
            "progress = Progress('bench eager fp32 bs1 seq32 max_length', 2, 'window')\n"
            "progress.start('timing')\n"
            "progress.finish('p50 1.234 ms')\n"
            "raise SystemExit('the step failed, saying why')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1
    console, written = proc.stderr + proc.stdout, log.read_text()
    for line in ("bench eager fp32 bs1 seq32 max_length: timing",
                 "bench eager fp32 bs1 seq32 max_length: p50 1.234 ms (0 windows in 0 s)",
                 "the step failed, saying why"):
        assert line in console and line in written, line
    for line in ("native library noise", "a child process talking", "an ordinary log line", "a library warning"):
        assert line in written and line not in console, line


def test_a_finished_job_ends_without_waiting_for_the_interpreters_teardown(tmp_path):
    # a job that leaves something behind which the interpreter's exit would wait for (here a non-daemon thread
    # sleeping a minute; in real jobs Inductor's workers and the CUDA context) ends as soon as it returns, with
    # its log and console lines flushed
    log = tmp_path / "job.log"
    script = tmp_path / "step.py"
    script.write_text(
        "import logging, threading, time\n"
        "from types import SimpleNamespace\n"
        "from workflow_scripts.step_io import run_step\n"
        f"snakemake = SimpleNamespace(log=[{str(log)!r}], resources=SimpleNamespace(gpu=0))\n"
        "def job(smk):\n"
        "    threading.Thread(target=time.sleep, args=(60,)).start()\n"
        "    logging.getLogger('progress').info('the job is done')\n"
        "def command_line():\n"
        "    raise AssertionError('a Snakemake job must not run the command line')\n"
        "run_step(globals(), job, command_line)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=40)
    assert run.returncode == 0
    assert "the job is done" in log.read_text() and "the job is done" in run.stderr
