import json
import os
import stat
import signal
import subprocess
import sys

import jsonschema
import pytest

from workflow_scripts import results


def minimal_result(**changes):
    result = {
        "schema_version": 1, "kind": "latency", "status": "skipped", "reason": "fp16 matmuls are not supported",
        "cell": {"engine": "eager", "precision": "fp16", "batch_size": 1, "seq_len": 128, "padding": "max_length",
                 "device": "cpu"},
        "model": {"model_id": "bert-base-uncased", "weights": "random"},
        "environment": {key: None for key in ("hostname", "cpu", "torch", "transformers", "git_commit",
                                              "config_hash", "time_utc", "gpu_name", "gpu_driver", "cuda",
                                              "slurm_job_id")} | {"device": "cpu"},
    }
    result.update(changes)
    return result


def test_a_skipped_cell_is_valid():
    results.validate_cell_result(minimal_result())


@pytest.mark.parametrize("change", [
    {"status": "fast"},
    {"kind": "vibes"},
    {"cell": {"engine": "eager", "precision": "fp8", "batch_size": 1, "seq_len": 128, "padding": "max_length",
              "device": "cpu"}},
    {"cell": {"engine": "eager", "precision": "fp32", "batch_size": 0, "seq_len": 128, "padding": "max_length",
              "device": "cpu"}},
    {"status": "failed", "reason": None},
    {"status": "ok", "reason": None},  # ok without latency numbers
])
def test_schema_rejects_broken_results(change):
    with pytest.raises(jsonschema.ValidationError):
        results.validate_cell_result(minimal_result(**change))


def test_write_cell_result_refuses_an_invalid_result_and_leaves_no_file(tmp_path):
    target = tmp_path / "cell.json"
    with pytest.raises(jsonschema.ValidationError):
        results.write_cell_result(target, minimal_result(status="fast"))
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "out.json"
    results.write_json(target, {"a": 1})
    results.write_json(target, {"b": 2})
    assert json.loads(target.read_text()) == {"b": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_a_writer_killed_mid_write_leaves_no_target(tmp_path):
    target = tmp_path / "big.bin"
    code = ("import sys, os, signal; from workflow_scripts import results\n"
            "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)\n"
            f"results.atomic_write_bytes({str(target)!r}, b'x' * 1000000)\n")
    proc = subprocess.run([sys.executable, "-c", code])
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        results.write_json(tmp_path / "out.json", {"a": 1})
        results.atomic_write_text(tmp_path / "report.html", "<p>hi</p>")
    finally:
        os.umask(previous)
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {mode}
