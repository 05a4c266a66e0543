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


def test_a_cell_step_records_its_failure_as_the_result_and_writes_it(tmp_path, caplog):
    """The shared cell-step skeleton: the step's exception becomes the status and reason (not raised), and the
    result is written with its environment and logged once, as every cell step's result is."""
    import logging

    from workflow_scripts.cell_step import recorded_result
    from workflow_scripts.engines.base import EngineUnavailable

    (tmp_path / "inferbench_model.json").write_text(json.dumps({"model_id": "tiny", "weights": "random"}))
    cell = minimal_result()["cell"]
    log = logging.getLogger("a_step")
    caplog.set_level(logging.INFO)
    for error, status in ((RuntimeError("the engine broke\nsecond line"), "failed"),
                          (EngineUnavailable("fp16 matmuls are not supported"), "skipped")):
        out = tmp_path / f"{status}.json"
        with recorded_result("accuracy", cell, tmp_path, out, {"cell": cell}, log, accuracy=None,
                             correctness=None) as result:
            result["accuracy"] = 0.5
            raise error
        written = json.loads(out.read_text())
        assert written == json.loads(json.dumps(result))
        assert (written["kind"], written["status"], written["accuracy"]) == ("accuracy", status, 0.5)
        assert written["reason"] in ("RuntimeError: the engine broke", "fp16 matmuls are not supported")
        assert written["model"]["model_id"] == "tiny" and written["environment"]["device"] == "cpu"
        assert f"{out}: {status} {written['reason']}" in caplog.messages

    with recorded_result("accuracy", cell, tmp_path, tmp_path / "ok.json", {"cell": cell}, log,
                         describe=lambda result: f"accuracy={result['accuracy']}", accuracy=0.9) as result:
        pass
    assert result["status"] == "ok" and f"{tmp_path / 'ok.json'}: ok accuracy=0.9" in caplog.messages
