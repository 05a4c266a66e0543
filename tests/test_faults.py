"""Faults and bad input, provoked for real: each failure is clear, contained and resumable.

docs/faults.md lists every case with its outcome and the test that proves it. The end-to-end cases share one
minimal pipeline (conftest's MINIMAL: eager, torchscript and one served engine, fp32, batch 1, the tiny model of
tests/config.test.yaml) that runs at the same time as the full test pipeline, in another working directory,
with fake secrets in both environments (conftest's `pipeline_runs`). The cases that change its results run in
this file's order, each leaving it complete for the next (the last ones leave its served cells failed).
"""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import (FAKE_SECRETS, MINIMAL, REPO, overlay, processes_with, scheduled_jobs,
                      snakemake_command)
from test_results import minimal_result
from workflow_scripts import benchmark, checksums, environment, export, results

pytestmark = pytest.mark.slow

ENGINES = MINIMAL["sweep"]["engines"]
CELL = "results/bench/{engine}/fp32/bs1_seq32_max_length.json"


def pipeline_environment() -> dict:
    return {**os.environ, **FAKE_SECRETS}


def run_snakemake(workdir: Path, overlays, args=(), check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(snakemake_command(workdir, overlays, args), capture_output=True, text=True,
                          env=pipeline_environment())
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def planned_outputs(dry_run_output: str) -> set[str]:
    """The first output of every job `snakemake -n` plans."""
    return {line.split("output:")[1].split(",")[0].strip() for line in dry_run_output.splitlines()
            if line.strip().startswith("output:")}


def wait_until(condition, timeout_s: float, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    return condition()


@pytest.fixture(scope="module")
def minimal_run(pipeline_runs) -> dict:
    """The minimal pipeline: {"workdir", "overlays" (MINIMAL's file, to pass to every later run), "returncode",
    "stdout", "stderr"}."""
    return pipeline_runs["minimal"]


# ---------------------------------------------------------------- two pipelines on one node at once
# serving/server.py's lines: a server's start (its command line) and stop, and a Dynamo worker's command line
SERVER_LINES = {"tritonserver": ("starting tritonserver:", "tritonserver stopped"),
                "dynamo": ("starting dynamo frontend:", "dynamo frontend stopped")}


def server_lifetimes(workdir: Path) -> list[dict]:
    """Every server a pipeline's jobs started (a tritonserver, or a Dynamo frontend with its worker): when it
    started and stopped, its ports, and the files it served (Triton's repository, the Dynamo worker's model)."""
    def stamp(line):
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")

    servers = []
    for log in sorted((workdir / "results" / "logs").rglob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        workers = [line for line in lines if "starting dynamo worker:" in line]
        for kind, (start_mark, stop_mark) in SERVER_LINES.items():
            starts = [line for line in lines if start_mark in line]
            stops = [line for line in lines if stop_mark in line]
            for index, (start, stop) in enumerate(zip(starts, stops)):
                ports = {int(port) for port in re.findall(r"--(?:http|grpc|metrics|grpc-metrics)-port[= ](\d+)", start)}
                files = (re.search(r"--model-repository=(\S+)", start) if kind == "tritonserver" else
                         re.search(r"--model-dir (\S+)", workers[index])).group(1)
                servers.append({"log": log, "kind": kind, "start": stamp(start), "stop": stamp(stop), "ports": ports,
                                "files": files})
    return servers


def test_two_pipelines_on_one_node_at_once_do_not_collide(pipeline_runs):
    for name, run in pipeline_runs.items():
        assert run["returncode"] == 0, f"pipeline {name}:\n{run['stdout'][-3000:]}\n{run['stderr'][-5000:]}"
        table = pd.read_csv(run["workdir"] / "results" / "aggregate" / "cells.csv")
        assert (table.status == "ok").all(), table[["engine", "status", "reason"]]
        serving = pd.read_csv(run["workdir"] / "results" / "aggregate" / "serving.csv")
        assert len(serving) and (serving.status == "ok").all()
    assert sorted(pd.read_csv(pipeline_runs["minimal"]["workdir"] / "results" / "aggregate" / "cells.csv").engine
                  ) == sorted(ENGINES)
    servers = {name: server_lifetimes(run["workdir"]) for name, run in pipeline_runs.items()}
    # a server for each served engine's cells (one batch size in the minimal pipeline, two in the full one),
    # whole-split pass and load sweep: Triton's three in the minimal one, Triton's and Dynamo's four each in
    # the full one. Each server on its own pipeline's files
    assert [s["kind"] for s in servers["minimal"]] == ["tritonserver"] * 3
    assert sorted(s["kind"] for s in servers["full"]) == ["dynamo"] * 4 + ["tritonserver"] * 4
    for name, run in pipeline_runs.items():
        assert all(s["files"].startswith(str(run["workdir"])) and len(s["ports"]) == (3 if s["kind"] ==
                   "tritonserver" else 2) for s in servers[name]), servers[name]
    # servers of the two pipelines that were up at the same time listened on different ports
    overlapping = [(a, b) for a in servers["minimal"] for b in servers["full"]
                   if a["start"] < b["stop"] and b["start"] < a["stop"]]
    assert overlapping, "the two pipelines' servers never ran at the same time: nothing could collide"
    assert all(not (a["ports"] & b["ports"]) for a, b in overlapping)
    assert not processes_with("tritonserver --model-repository=" + str(pipeline_runs["minimal"]["workdir"].parent))


def test_unreachable_hub_with_source_auto_falls_back_and_the_report_says_so_first(minimal_run):
    run = minimal_run
    assert run["returncode"] == 0
    info = json.loads((run["workdir"] / "results" / "data" / "dataset_info.json").read_text())
    assert info["origin"] == "sample" and info["hub_error"]
    report = (run["workdir"] / "results" / "report" / "report.md").read_text()
    first_lines = "\n".join(report.splitlines()[:4])
    assert "SST-2-format sample bundled with inferbench (the Hugging Face hub was unreachable)" in first_lines
    # the model's own warnings come first too (trust_remote_code's would be among them)
    assert "MODEL: Random weights" in report[:report.index("## Headline")]


def test_no_secret_from_the_environment_reaches_any_result_report_or_log(pipeline_runs):
    scanned = []
    for run in pipeline_runs.values():
        for path in sorted(run["workdir"].rglob("*")):
            if path.is_file():
                content = path.read_bytes()
                scanned.append(path.name)
                for variable, secret in FAKE_SECRETS.items():
                    assert secret.encode() not in content, f"{variable} leaked into {path}"
    # the scan covered what a user would share: results, aggregated tables, reports, job and server logs
    for expected in ("bs1_seq32_max_length.json", "cells.csv", "report.md", "report.html", "model.log",
                     "bs1_seq32_max_length.server.log"):
        assert expected in scanned


def test_environment_capture_records_no_environment_variable_but_the_slurm_job_id(monkeypatch):
    for variable, secret in FAKE_SECRETS.items():
        monkeypatch.setenv(variable, secret)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    captured = json.dumps(environment.capture("cpu", {"sweep": "any"}))
    assert not any(secret in captured for secret in FAKE_SECRETS.values())
    assert '"slurm_job_id": "4242"' in captured


# ---------------------------------------------------------------- a job killed mid-measurement
def descendants(pid: int) -> set[int]:
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, set()).add(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def python_running(pids, script_suffix: str) -> list[int]:
    """Those of `pids` that are a Python interpreter running a script whose name ends with `script_suffix`."""
    found = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if len(argv) > 1 and "python" in Path(argv[0]).name and argv[1].endswith(script_suffix) and state != "Z":
            found.append(pid)
    return found


def test_a_job_killed_mid_measurement_leaves_no_result_and_the_next_run_redoes_exactly_it(minimal_run, tmp_path):
    run = minimal_run
    workdir, cell = run["workdir"], CELL.format(engine="eager")
    assert run["returncode"] == 0
    # this one cell again with a measurement long enough to be killed in the middle of it
    slow = overlay(tmp_path, "slow", {"measurement": {**MINIMAL["measurement"], "windows": 1200,
                                                      "window_seconds": 0.05}})
    snakemake = subprocess.Popen(snakemake_command(workdir, [*run["overlays"], slow], args=[cell, "--forcerun", cell]),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=pipeline_environment())
    job = wait_until(lambda: python_running(descendants(snakemake.pid), "benchmark.py"), timeout_s=120)
    assert job, "the benchmark job did not start"
    time.sleep(10)  # past imports and model loading (about 4 s here): inside the 2 x 60 s of timed windows
    assert snakemake.poll() is None
    os.kill(job[0], signal.SIGKILL)  # what Slurm's time limit or the OOM killer does to a job
    stdout, stderr = snakemake.communicate(timeout=120)
    assert snakemake.returncode != 0
    assert not wait_until(lambda: python_running([job[0]], "benchmark.py"), 10)
    assert "Error in rule benchmark_cell" in stdout + stderr
    assert not (workdir / cell).exists()
    assert not list((workdir / "results").rglob("*.tmp"))
    dry_run = run_snakemake(workdir, run["overlays"], args=["-n"]).stdout
    assert scheduled_jobs(dry_run) == {"benchmark_cell": 1, "aggregate": 1, "report": 1, "all": 1}
    assert cell in planned_outputs(dry_run)


def test_after_snakemake_itself_is_killed_unlock_then_the_same_command_resumes(minimal_run, tmp_path):
    """SIGKILL to Snakemake and its job (a lost login session, a time limit on the whole run) leaves the
    working directory locked: the documented resume is `--unlock`, then the same command again."""
    run = minimal_run
    workdir, cell = run["workdir"], CELL.format(engine="eager")
    assert run["returncode"] == 0
    slow = overlay(tmp_path, "slow", {"measurement": {**MINIMAL["measurement"], "windows": 1200,
                                                      "window_seconds": 0.05}})
    snakemake = subprocess.Popen(snakemake_command(workdir, [*run["overlays"], slow], args=[cell, "--forcerun", cell]),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=pipeline_environment(),
                                 start_new_session=True)
    job = wait_until(lambda: python_running(descendants(snakemake.pid), "benchmark.py"), timeout_s=120)
    assert job, "the benchmark job did not start"
    os.killpg(snakemake.pid, signal.SIGKILL)
    snakemake.wait(timeout=30)
    assert not (workdir / cell).exists()  # Snakemake removes a job's old outputs before it starts
    # the pipeline's own command again: refused while the dead run's lock stays, then resumed
    locked = run_snakemake(workdir, run["overlays"], check=False)
    assert locked.returncode != 0 and "LockException" in locked.stdout + locked.stderr
    run_snakemake(workdir, run["overlays"], args=["--unlock"])
    run_snakemake(workdir, run["overlays"])
    assert json.loads((workdir / cell).read_text())["status"] == "ok"
    assert scheduled_jobs(run_snakemake(workdir, run["overlays"], args=["-n"]).stdout) == {}


# ---------------------------------------------------------------- strict=true and a mismatching engine
def test_strict_run_passes_when_every_cell_is_trustworthy(minimal_run):
    run = minimal_run
    proc = run_snakemake(run["workdir"], run["overlays"], args=["--config", "strict=true"])
    assert proc.returncode == 0
    assert "trustworthy" in (run["workdir"] / "results" / "report" / "strict_check.passed").read_text()


def test_strict_run_with_a_mismatching_engine_exits_non_zero_after_writing_the_report(minimal_run, tmp_path):
    run = minimal_run
    report = run["workdir"] / "results" / "report" / "report.md"
    # bf16 for real, held to a tolerance no bf16 model meets: its cells are mismatch
    tight = overlay(tmp_path, "tight", {
        "sweep": {"engines": ["eager"], "precisions": ["fp32", "bf16"]},
        "correctness": {"tolerance": {"bf16": {"max_abs_diff": 1.0e-6, "min_agreement": 0.95}}},
    })
    started = time.time()
    proc = run_snakemake(run["workdir"], [*run["overlays"], tight], args=["--config", "strict=true"], check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "strict: eager/bf16/bs1/seq32/max_length is mismatch" in output
    assert "Error in rule strict_check" in output
    assert "inferbench: the run did not finish" in output  # the closing line of a failed run: what to do next
    assert not (run["workdir"] / "results" / "report" / "strict_check.passed").exists()
    # the report was written by this run, before the strict check failed it, and warns at the top
    assert report.stat().st_mtime >= started
    text = report.read_text()
    warnings = text[:text.index("## Headline")]
    assert "MISMATCH: 1 cell outputs differ from fp32 eager beyond tolerance" in warnings
    assert "eager/bf16/bs1/seq32/max_length" in warnings
    assert re.search(r"^\| eager \| bf16 \|.*\| mismatch \|", text, re.MULTILINE)
    assert re.search(r"^\| eager \| fp32 \|.*\| ok \|", text, re.MULTILINE)


# ---------------------------------------------------------------- a corrupted export
def test_a_corrupted_export_is_named_when_planning_without_a_write_and_exported_again(minimal_run):
    run = minimal_run
    workdir = run["workdir"]
    assert run["returncode"] == 0
    module = workdir / "results" / "export" / "torchscript" / "fp32" / "seq32.pt"
    before = {engine: (workdir / CELL.format(engine=engine)).stat().st_mtime_ns for engine in ENGINES}
    module.write_bytes(module.read_bytes()[: module.stat().st_size // 2])  # truncated, as by a full disk
    files = sorted(path for path in (workdir / "results").rglob("*") if path.is_file())
    stamps = [path.stat().st_mtime_ns for path in files]
    dry_run = run_snakemake(workdir, run["overlays"], args=["-n"])
    warning = "Corrupted export: results/export/torchscript/fp32/seq32.pt is corrupted"
    assert warning in dry_run.stdout + dry_run.stderr
    assert "add --forcerun results/export/torchscript/fp32/seq32.pt" in dry_run.stdout + dry_run.stderr
    # planning wrote nothing (it once set the export's modification time)
    assert [path.stat().st_mtime_ns for path in files] == stamps
    # as the warning says: the export, and only what uses it
    force = ["--forcerun", "results/export/torchscript/fp32/seq32.pt"]
    dry_run = run_snakemake(workdir, run["overlays"], args=["-n", *force])
    assert scheduled_jobs(dry_run.stdout) == {"export_torchscript": 1, "benchmark_cell": 1, "accuracy": 1,
                                              "aggregate": 1, "report": 1, "all": 1}
    assert CELL.format(engine="torchscript") in planned_outputs(dry_run.stdout)
    run_snakemake(workdir, run["overlays"], args=force)
    table = pd.read_csv(workdir / "results" / "aggregate" / "cells.csv")
    assert (table.status == "ok").all(), table[["engine", "status", "reason"]]
    after = {engine: (workdir / CELL.format(engine=engine)).stat().st_mtime_ns for engine in ENGINES}
    assert [engine for engine in before if after[engine] != before[engine]] == ["torchscript"]
    assert scheduled_jobs(run_snakemake(workdir, run["overlays"], args=["-n"]).stdout) == {}


def test_a_corruption_that_keeps_size_and_time_is_refused_before_use_and_then_exported_again(minimal_run):
    run = minimal_run
    workdir = run["workdir"]
    assert run["returncode"] == 0
    module = workdir / "results" / "export" / "torchscript" / "fp32" / "seq32.pt"
    original, stamp = module.read_bytes(), module.stat()
    try:
        # one byte changed in place, size and modification time kept: planning trusts such a file
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0xFF
        module.write_bytes(bytes(damaged))
        os.utime(module, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        assert checksums.corrupt_exports([module]) == {}
        with pytest.raises(RuntimeError, match="is corrupted .* the next snakemake run exports it again"):
            export.load_verified_torchscript(module, "cpu")
        # refused before use and marked outdated: the next run exports it again, then reruns what used it
        dry_run = run_snakemake(workdir, run["overlays"], args=["-n"]).stdout
        assert scheduled_jobs(dry_run) == {"export_torchscript": 1, "benchmark_cell": 1, "accuracy": 1,
                                           "aggregate": 1, "report": 1, "all": 1}
    finally:
        module.write_bytes(original)
        os.utime(module, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


# ---------------------------------------------------------------- the report with failed cells
def test_report_still_builds_and_lists_failed_cells(minimal_run, tmp_path):
    run = minimal_run
    # a served model that cannot be READY in time: its cells and its load sweep fail for real
    impatient = overlay(tmp_path, "impatient", {"triton": {"startup_timeout_s": 1}})
    # a timeout cannot change a result, so changing it reruns nothing (README): the served jobs are forced
    served_jobs = [CELL.format(engine="triton-python-grpc"), "results/accuracy/triton-python-grpc/fp32/seq32_max_length.json",
                   "results/serving/triton-python-grpc/fp32/seq32_c1.json"]
    assert all((run["workdir"] / path).exists() for path in served_jobs)
    proc = run_snakemake(run["workdir"], [*run["overlays"], impatient], args=["--forcerun", *served_jobs])
    assert proc.returncode == 0
    table = pd.read_csv(run["workdir"] / "results" / "aggregate" / "cells.csv")
    served = table[table.engine == "triton-python-grpc"]
    assert list(served.status) == ["failed"] and "READY within" in served.reason.iloc[0]
    assert (table[table.engine != "triton-python-grpc"].status == "ok").all()
    text = (run["workdir"] / "results" / "report" / "report.md").read_text()
    warnings = text[:text.index("## Headline")]
    assert "FAILED: 1 cell crashed" in warnings and "triton-python-grpc/fp32/bs1/seq32/max_length" in warnings
    assert "triton.startup_timeout_s" in warnings
    assert not processes_with("--model-repository=" + str(run["workdir"]))


# ---------------------------------------------------------------- a Triton server that dies mid-run
def test_a_server_killed_mid_run_fails_the_cell_leaves_no_process_and_a_retry_succeeds(minimal_run, tmp_path):
    run = minimal_run
    assert run["returncode"] == 0
    results_dir = run["workdir"] / "results"
    repository = results_dir / "triton" / "python" / "fp32" / "seq32"
    cell = {"engine": "triton-python-grpc", "precision": "fp32", "batch_size": 1, "seq_len": 32,
            "padding": "max_length", "device": "cpu"}
    settings = {"launcher": "local", "startup_timeout_s": 120, "stop_grace_s": 10}
    long_measurement = {**MINIMAL["measurement"], "windows": 1200, "window_seconds": 0.05}
    killed = {}

    def kill_the_server_once_it_serves():
        server = wait_until(lambda: [p for p in processes_with("tritonserver") if str(repository) in p], 120)
        pid = int(server[0].split()[0])
        http_port = re.search(rb"--http-port=(\d+)", Path(f"/proc/{pid}/cmdline").read_bytes()).group(1).decode()

        def serving():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/inferbench_python_fp32/stats",
                                            timeout=2) as response:
                    return json.loads(response.read())["model_stats"][0]["inference_count"] > 0
            except OSError:
                return False

        killed["serving"] = wait_until(serving, 120, 0.05)
        os.kill(pid, signal.SIGKILL)
        killed["pid"] = pid

    killer = threading.Thread(target=kill_the_server_once_it_serves)
    killer.start()
    result = benchmark.run_cell(cell, results_dir / "model", results_dir / "tokens" / "seq32.pt",
                                results_dir / "reference" / "seq32.pt", {"triton_python": repository}, settings,
                                long_measurement, {"max_abs_diff": 1e-3, "min_agreement": 0.99},
                                tmp_path / "killed.json")
    killer.join()
    assert killed["serving"] and killed["pid"]
    assert result["status"] == "failed"
    # the reason says the server died (not only the client's transport error)
    assert "tritonserver exited with code -9 while serving" in result["reason"]
    assert "[StatusCode.UNAVAILABLE]" in result["reason"]
    results.validate_cell_result(json.loads((tmp_path / "killed.json").read_text()))
    assert (tmp_path / "killed.server.log").exists()  # the dead server's log stays beside the result
    assert wait_until(lambda: not processes_with(str(repository)), 30)
    retry = benchmark.run_cell(cell, results_dir / "model", results_dir / "tokens" / "seq32.pt",
                               results_dir / "reference" / "seq32.pt", {"triton_python": repository}, settings,
                               MINIMAL["measurement"], {"max_abs_diff": 1e-3, "min_agreement": 0.99},
                               tmp_path / "retry.json")
    assert retry["status"] == "ok", retry["reason"]
    assert wait_until(lambda: not processes_with(str(repository)), 30)


# ---------------------------------------------------------------- out of memory under a memory cap
MEMORY_CAPPED_CELLS = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from workflow_scripts import benchmark

    results_dir, out, measurement = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])

    def cell(batch_size, name):
        spec = {"engine": "eager", "precision": "fp32", "batch_size": batch_size, "seq_len": 32,
                "padding": "max_length", "device": "cpu"}
        return benchmark.run_cell(spec, results_dir / "model", results_dir / "tokens" / "seq32.pt",
                                  results_dir / "reference" / "seq32.pt", {}, {}, measurement,
                                  {"max_abs_diff": 1e-3, "min_agreement": 0.99}, out / f"{name}.json")["status"]

    statuses = [cell(1, "before")]  # imports, threads and a first model load, uncapped
    # the cap: 256 MiB more address space than this process has now, as a small GPU would have
    size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + 256 * 2**20, resource.RLIM_INFINITY))
    # batch 65536 of the tiny model needs 512 MiB for its first hidden states alone
    statuses += [cell(65536, "huge"), cell(1, "after")]
    print(json.dumps(statuses))
""")


def test_out_of_memory_under_a_memory_cap_is_an_oom_cell_and_the_next_cell_runs(minimal_run, tmp_path):
    run = minimal_run
    assert run["returncode"] == 0
    proc = subprocess.run([sys.executable, "-c", MEMORY_CAPPED_CELLS, str(run["workdir"] / "results"), str(tmp_path),
                           json.dumps(MINIMAL["measurement"])], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["ok", "oom", "ok"]
    huge = json.loads((tmp_path / "huge.json").read_text())
    results.validate_cell_result(huge)
    assert huge["status"] == "oom" and "can't allocate memory" in huge["reason"]


# ---------------------------------------------------------------- disk full while writing a result
def large_result() -> dict:
    return minimal_result(reason="fp16 matmuls are not supported on CPU. " + "x" * 200_000)


def test_disk_full_while_writing_a_result_is_a_clear_error_and_leaves_the_old_file(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.decode().strip()}); "
                    "test_writing_a_result_beyond_the_file_size_limit_... covers the same path")
    try:
        target = disk / "bench" / "cell.json"
        results.write_cell_result(target, minimal_result())
        old = target.read_bytes()
        with pytest.raises(OSError) as error:
            results.write_cell_result(target, large_result())
        assert "No space left on device" in str(error.value)
        assert str(target) in str(error.value) and "left unchanged" in str(error.value)
        assert target.read_bytes() == old
        assert [p.name for p in target.parent.iterdir()] == ["cell.json"]
        # the space the failed write took is free again
        results.write_cell_result(disk / "bench" / "next.json", minimal_result())
    finally:
        subprocess.run(["umount", str(disk)], check=True)


SIZE_LIMITED_WRITER = textwrap.dedent("""
    import json, resource, signal, sys
    from workflow_scripts import results
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # report EFBIG instead of being killed by the signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
    try:
        results.write_cell_result(sys.argv[1], json.loads(sys.stdin.read()))
    except OSError as error:
        print(error)
        sys.exit(3)
""")


def test_writing_a_result_beyond_the_file_size_limit_is_a_clear_error_and_leaves_the_old_file(tmp_path):
    target = tmp_path / "bench" / "cell.json"
    results.write_cell_result(target, minimal_result())
    old = target.read_bytes()
    limit = 16 * 1024
    proc = subprocess.run([sys.executable, "-c", SIZE_LIMITED_WRITER, str(target), str(limit)],
                          input=json.dumps(large_result()), capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 3, proc.stderr
    assert "File too large" in proc.stdout and str(target) in proc.stdout
    assert target.read_bytes() == old
    assert [p.name for p in target.parent.iterdir()] == ["cell.json"]


# ---------------------------------------------------------------- code from a model repository
REMOTE_CODE_PROBE = textwrap.dedent("""
    import json, shutil, sys
    from pathlib import Path
    from workflow_scripts import dataset, model

    root = Path(sys.argv[1])
    tiny = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128,
            "vocab_size": 2000}
    dataset.prepare({"name": "glue", "config": "sst2", "split": "validation", "max_samples": 40,
                     "source": "sample"}, root / "rows.jsonl", root / "info.json")
    model.prepare({"id": "bert-base-uncased", "weights": "random", "num_labels": 2, "config_overrides": tiny},
                  root / "rows.jsonl", root / "repo")
    # the saved model becomes a repository whose classes are its own Python code, which leaves a mark if run;
    # one copy per case, since Python runs an imported module only once per process
    config = json.loads((root / "repo" / "config.json").read_text())
    config.update(model_type="inferbench-probe", auto_map={
        "AutoConfig": "probe_code.ProbeConfig", "AutoModelForSequenceClassification": "probe_code.ProbeModel"})
    outcomes = {}
    for case, extra in (("unset", {}), ("off", {"trust_remote_code": False}), ("on", {"trust_remote_code": True})):
        for weights in ("pretrained", "random"):
            repo, mark = root / f"repo_{case}_{weights}", root / f"code_ran_{case}_{weights}"
            shutil.copytree(root / "repo", repo)
            (repo / "config.json").write_text(json.dumps(config))
            (repo / "probe_code.py").write_text(
                f"from pathlib import Path\\nPath({str(mark)!r}).write_text('ran')\\n"
                "from transformers import BertConfig, BertForSequenceClassification\\n"
                "class ProbeConfig(BertConfig):\\n    model_type = 'inferbench-probe'\\n"
                "class ProbeModel(BertForSequenceClassification):\\n    config_class = ProbeConfig\\n")
            settings = {"id": str(repo), "weights": weights, "num_labels": 2, "config_overrides": {}, **extra}
            try:
                info = model.prepare(settings, root / "rows.jsonl", root / f"out_{case}_{weights}")
                outcome = {"warnings": info["warnings"]}
            except SystemExit as error:
                outcome = {"error": str(error)}
            outcomes[f"{case}/{weights}"] = {**outcome, "code_ran": mark.exists()}
    print(json.dumps(outcomes))
""")


def test_code_from_a_model_repository_runs_only_when_the_config_trusts_it_and_then_with_a_warning(tmp_path):
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}  # transformers copies the code here
    proc = subprocess.run([sys.executable, "-c", REMOTE_CODE_PROBE, str(tmp_path)], capture_output=True, text=True,
                          cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcomes = json.loads(proc.stdout.strip().splitlines()[-1])
    for case in ("unset/pretrained", "unset/random", "off/pretrained", "off/random"):
        assert not outcomes[case]["code_ran"], case
        assert "model.trust_remote_code: true" in outcomes[case]["error"], case
    for case in ("on/pretrained", "on/random"):
        assert outcomes[case]["code_ran"], case
        assert any("trust_remote_code is on" in warning for warning in outcomes[case]["warnings"]), case
    assert yaml.safe_load((REPO / "config.yaml").read_text())["model"]["trust_remote_code"] is False
