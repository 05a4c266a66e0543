"""The whole pipeline through snakemake on CPU with the small test config, then partial reruns."""
import gzip
import json
import os
import re
import shutil
import sys

import pandas as pd
import pytest
import yaml

from conftest import REPO, overlay, scheduled_jobs, snakemake
from workflow_scripts.results import validate_cell_result

pytestmark = pytest.mark.slow
IN_PROCESS = ["eager", "compile-default", "torchscript"]
SERVED = ["triton-python-grpc", "dynamo-grpc"]
ENGINES = IN_PROCESS + SERVED
# what each server's log (kept beside the result) shows of how it was started: loopback, the KServe frontend
SERVER_LOG_MARKS = {"triton-python-grpc": "--http-address=127.0.0.1", "dynamo-grpc": "--kserve-grpc-server"}


@pytest.fixture(scope="module")
def table(pipeline_run):
    workdir, _ = pipeline_run
    return pd.read_csv(workdir / "results" / "aggregate" / "cells.csv")


def test_every_cell_has_a_row_with_its_status(table):
    assert len(table) == len(ENGINES) * 2  # engines x {bs1, bs4}, fp32
    assert set(table.engine) == set(ENGINES)
    assert (table.status == "ok").all(), table[["engine", "batch_size", "status", "reason"]]


def test_numbers_are_sane(table):
    ok = table[table.status == "ok"]
    assert (ok.p50_ms > 0).all()
    assert (ok.min_ms <= ok.p50_ms).all() and (ok.p50_ms <= ok.p99_ms).all() and (ok.p99_ms <= ok.max_ms).all()
    assert (ok.p50_ci_low_ms <= ok.p50_ms).all() and (ok.p50_ms <= ok.p50_ci_high_ms).all()
    expected_throughput = ok.batch_size * 1000.0 / ok.p50_ms  # the report's one throughput: batch / p50
    assert ((ok.throughput_samples_per_s - expected_throughput).abs() / expected_throughput < 0.01).all()
    assert (ok.iterations >= 2 * 4 * 3).all()  # min_window_iters x windows x repeats of the test config
    assert ok.warmup_steady.notna().all() and (ok.window_p50_cv >= 0).all()
    assert ok.throttled.eq(False).all()  # CPU cells: no GPU to throttle
    compiled = ok[ok.engine.str.startswith("compile")]
    assert (compiled.first_call_s > 0).all()


def test_outputs_agree_with_fp32_eager_within_tolerance(table):
    ok = table[table.status == "ok"]
    assert (ok.max_abs_diff <= 1e-3).all()
    assert (ok.agreement >= 0.99).all()
    assert (ok.accuracy_status == "ok").all()
    # the same model and rows: every engine classifies the split alike
    assert ok.accuracy.nunique() == 1


def test_cell_files_follow_the_one_schema(pipeline_run):
    workdir, _ = pipeline_run
    files = sorted((workdir / "results").glob("bench/*/*/*.json")) + sorted(
        (workdir / "results").glob("accuracy/*/*/*.json"))
    assert len(files) == len(ENGINES) * 2 + len(ENGINES)  # cells (bs1, bs4) and whole-split passes
    for path in files:
        result = json.loads(path.read_text())
        validate_cell_result(result)
        env = result["environment"]
        assert env["torch"] and env["hostname"] and env["config_hash"] and env["time_utc"]
    assert not list((workdir / "results").rglob("*.tmp"))


def model_job_spans(workdir) -> list[tuple[str, str, float, float]]:
    """(a result file, CUDA_VISIBLE_DEVICES, when the job took its card, when it recorded its last result) of
    every job that ran the model and wrote a result; a load sweep's levels are one job."""
    jobs = {}
    for path in sorted((workdir / "results").glob("*/**/*.json")):
        result = json.loads(path.read_text())
        env = result.get("environment") if isinstance(result, dict) else None
        if env and env.get("placed_unix"):
            key = (env["cuda_visible_devices"], env["placed_unix"])
            name, _, _, end = jobs.get(key, (str(path.relative_to(workdir)), None, None, 0.0))
            jobs[key] = (name, *key, max(end, env["recorded_unix"]))
    return list(jobs.values())


def test_two_stand_in_gpus_run_two_timing_jobs_at_once_each_on_its_own_card(pipeline_run):
    workdir, _ = pipeline_run
    spans = model_job_spans(workdir)
    # cells, whole-split passes, load levels (one job), profiles
    assert len(spans) >= len(ENGINES) * 3 and {device for _, device, _, _ in spans} == {"0", "1"}
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if a[2] < b[3] and b[2] < a[3]]
    shared = [(a[0], b[0]) for a, b in overlapping if a[1] == b[1]]
    assert not shared, f"jobs ran at the same time on one card: {shared}"
    timing_pairs = [(a, b) for a, b in overlapping if "bench/" in a[0] and "bench/" in b[0]]
    assert timing_pairs, "no two benchmark cells ran at the same time"
    # each card's jobs ran on one core of their own (--cores 2: one per card, none left for CPU-only jobs)
    cores = {(device, json.loads((workdir / name).read_text())["environment"]["cpu_affinity"])
             for name, device, *_ in spans}
    assert len(cores) == 2 and all(core.isdigit() for _, core in cores), cores
    assert len({core for _, core in cores}) == 2, cores


def test_the_harness_benchmark_reads_each_jobs_kind_card_and_a_cells_phases(pipeline_run):
    workdir, _ = pipeline_run
    sys.path.insert(0, str(REPO / "benchmarks"))
    import harness_speed

    jobs = harness_speed.jobs_of(workdir / "results")
    assert {"bench", "accuracy", "reference", "tokenize", "profile_torch", "profile_nsys", "serving", "aggregate",
            "report"} <= {job["kind"] for job in jobs}
    cells = [job for job in jobs if job["kind"] == "bench"]
    assert len(cells) == len(ENGINES) * 2
    for cell in cells:
        assert cell["phases"]["load"] > 0 and cell["phases"]["timed"] > 0
        assert 0 < harness_speed.overhead_s(cell) < cell["wall_s"]
    # model jobs name their stand-in card in their logs; CPU-only jobs none
    assert {job["card"] for job in jobs if job["kind"] in ("bench", "accuracy")} == {"0", "1"}
    assert all(job["card"] is None for job in jobs if job["kind"] in ("tokenize", "aggregate", "report"))


def test_the_console_shows_each_cells_progress_and_no_library_noise(pipeline_run):
    """A user watching `snakemake --cores all` sees each timed cell start and end with its p50; progress bars,
    tracer warnings and the profiler's native lines stay off the console (the job logs keep what is not
    silenced at its source)."""
    workdir, proc = pipeline_run
    console = proc.stderr + proc.stdout
    measured = [json.loads(path.read_text()) for path in (workdir / "results" / "bench").rglob("*.json")]
    timed = [r for r in measured if r["status"] == "ok"]
    assert len(timed) >= 6, [(r["cell"], r["reason"]) for r in measured]
    for result in timed:
        cell = result["cell"]
        name = (f"bench {cell['engine']} {cell['precision']} bs{cell['batch_size']} seq{cell['seq_len']} "
                f"{cell['padding']}")
        p50 = result["latency"]["wall_ms"]["p50"]
        assert f"{name}: loaded in " in console and f"{name}: p50 {p50:.3f} ms" in console, name
        log = workdir / "results" / "logs" / "bench" / (
            f"{cell['engine']}_{cell['precision']}_bs{cell['batch_size']}_seq{cell['seq_len']}_{cell['padding']}.log")
        assert f"{name}: p50 {p50:.3f} ms" in log.read_text()
    assert "pair eager fp32 bs1 seq32 max_length vs eager fp32: speedup " in console
    # the pair's loads and warm-ups, on the console and in its log
    pair_log = (workdir / "results" / "logs" / "pairs" / "eager_fp32_bs1_seq32_max_length.log").read_text()
    for step in ("baseline eager fp32 loaded in ", "engine eager fp32 loaded in ", "baseline eager fp32 warm",
                 "engine eager fp32 warm"):
        line = f"pair eager fp32 bs1 seq32 max_length vs eager fp32: {step}"
        assert line in console and line in pair_log, step
    # a profile skipped on CPU: its one line, the skip and why
    assert "profile nsys eager fp32 bs1 seq32 max_length: skipped: Nsight Systems traces CUDA" in console
    assert "under Nsight Systems" not in console
    for noise in ("Loading weights", "Writing model shards", "TracerWarning", "FutureWarning", "USDT",
                  "profiler_start"):
        assert noise not in console, noise


def test_report_states_what_was_used_and_shows_every_engine(pipeline_run):
    workdir, proc = pipeline_run
    # the console's closing line says where the report is; only Snakemake's own two lines follow it (README)
    lines = proc.stderr.splitlines()  # Snakemake's log: its stdout holds nothing of a real run
    closing = lines.index(f"inferbench: the report is {workdir / 'results' / 'report' / 'report.html'}")
    assert [line.split(":")[0] for line in lines[closing + 1:] if line.strip()] == ["Complete log(s)", "Elapsed time"]
    report = (workdir / "results" / "report" / "report.md").read_text()
    head = report[:3000]
    assert "SST-2-format sample bundled with inferbench" in head
    assert "Random weights" in head
    assert "CPU RUN" in head
    assert "SKIPPED" not in head and "FAILED" not in head
    assert "## Serving" in report
    assert "## Headline: smallest batch" in report
    # the Summary opens with the main finding and answers each question against report.targets; a CPU run has
    # no matmul peak to compare with, and the GPU-only targets do not apply
    summary = report[report.index("## Summary"):report.index("## Headline")]
    assert "Main finding: " in summary
    assert "| fastest at batch 1 |" in summary and "| n/a on CPU |" in summary
    assert "no matmul peak measured (see Roofline) | ≥ 65% | n/a on CPU |" in summary
    # a serving row per server (Triton, Dynamo), each against its in-process twin (eager here)
    for engine in SERVED:
        assert re.search(rf"\| serving overhead at batch 1 \| {engine} fp32 [^|]* vs eager in-process", summary)
        assert re.search(rf"\| served throughput at the highest concurrency \(4 clients\) \| {engine} fp32[^|:]*:",
                         summary)
    for engine in ENGINES:
        assert f"| {engine} | fp32 |" in report
    # the budget table names a trusted winner (or says none fits) for each of config.yaml's four budgets
    budgets = report[report.index("## What to deploy for a latency budget"):report.index("## Headline")]
    assert len([line for line in budgets.splitlines() if line.startswith("| ") and "ms |" not in line]) == 4
    # a CPU run measures no energy and says why instead of showing an empty table
    energy = report[report.index("## Energy per inference"):]
    assert "Not measured: " in energy.split("\n## ", 1)[0]
    for figure in ("latency_vs_batch", "throughput_vs_batch", "speedup", "pareto", "throughput_vs_concurrency",
                   "kernel_breakdown"):
        assert (workdir / "results" / "report" / "figures" / f"{figure}.png").stat().st_size > 5000
    html = (workdir / "results" / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 6
    assert "<table" in html


def test_baseline_speedup_is_one(table, pipeline_run):
    workdir, _ = pipeline_run
    report = (workdir / "results" / "report" / "report.md").read_text()
    eager_row = next(line for line in report.splitlines() if line.startswith("| eager | fp32 | 32 |"))
    assert "1.00×" in eager_row
    # and side by side against itself (config.test.yaml's one pair): a ratio with its interval
    assert re.search(r"\| \d+\.\d\d× \[\d+\.\d\d–\d+\.\d\d\]", eager_row), eager_row


def test_nothing_to_do_after_a_complete_run(pipeline_run):
    workdir, _ = pipeline_run
    assert scheduled_jobs(snakemake(workdir, args=["-n"]).stdout) == {}


def test_adding_a_batch_size_schedules_only_the_new_cells(pipeline_run, tmp_path):
    workdir, _ = pipeline_run
    jobs = scheduled_jobs(snakemake(workdir, overlay(tmp_path, "more", {"sweep": {"batch_sizes": [1, 4, 2]}}),
                                    args=["-n"]).stdout)
    assert jobs == {"benchmark_cell": len(ENGINES), "aggregate": 1, "report": 1, "all": 1}


def test_changing_one_engine_setting_reruns_only_that_engine(pipeline_run, tmp_path):
    workdir, _ = pipeline_run
    changed = overlay(tmp_path, "engine", {"engine_settings": {"compile-default": {"fullgraph": False}}})
    jobs = scheduled_jobs(snakemake(workdir, changed, args=["-n"]).stdout)
    # its 2 cells (2 batch sizes) and its whole-split pass (this config pairs and profiles no compile-default),
    # then aggregate and report
    assert jobs == {"benchmark_cell": 2, "accuracy": 1, "aggregate": 1, "report": 1, "all": 1}
    dry = snakemake(workdir, changed, args=["-n"]).stdout
    planned = [line.split("output:")[1] for line in dry.splitlines() if "output: results/bench" in line]
    assert planned and all("compile-default" in line for line in planned)


def test_an_engines_settings_rerun_its_profiles_and_load_sweep_too(pipeline_run, tmp_path):
    """Every job of an engine gets its settings as a param (cells, whole-split pass, profiles, load sweep, and
    pairs: rules/common.smk pair_engine_settings); here the profiled served engine's, from section triton."""
    workdir, _ = pipeline_run
    changed = overlay(tmp_path, "image", {"triton": {"apptainer": {"image": "docker://example.org/tritonserver:2"}}})
    jobs = scheduled_jobs(snakemake(workdir, changed, args=["-n"]).stdout)
    assert jobs == {"benchmark_cell": 2, "accuracy": 1, "profile_torch": 1, "profile_nsys": 1, "load_sweep": 1,
                    "aggregate": 1, "report": 1, "all": 1}


def test_changing_measurement_reruns_cells_but_not_model_or_export(pipeline_run, tmp_path):
    workdir, _ = pipeline_run
    jobs = scheduled_jobs(snakemake(workdir, overlay(tmp_path, "m", {"measurement": {"repeats": 2}}),
                                    args=["-n"]).stdout)
    # the pair (config.test.yaml: eager against itself at batch 1) is timed with the same settings
    assert jobs == {"benchmark_cell": len(ENGINES) * 2, "pair": 1, "pair_table": 1, "aggregate": 1, "report": 1,
                    "all": 1}


def test_changing_how_pairs_are_timed_reruns_only_the_pairs(pipeline_run, tmp_path):
    workdir, _ = pipeline_run
    jobs = scheduled_jobs(snakemake(workdir, overlay(tmp_path, "p", {"pairs": {"rounds": 5}}), args=["-n"]).stdout)
    assert jobs == {"pair": 1, "pair_table": 1, "report": 1, "all": 1}


def test_the_baseline_against_itself_is_a_ratio_near_one(pipeline_run):
    workdir, _ = pipeline_run
    pairs = pd.read_csv(workdir / "results" / "aggregate" / "pairs.csv")
    assert len(pairs) == 1
    row = pairs.iloc[0]
    assert (row.engine, row.baseline_engine, row.batch_size, row.status) == ("eager", "eager", 1, "ok")
    assert 0.7 < row.speedup < 1.4 and row.speedup_ci_low <= row.speedup <= row.speedup_ci_high
    validate_cell_result(json.loads((workdir / row.result_file).read_text()))


def test_the_order_of_keys_in_the_config_reruns_nothing(pipeline_run, tmp_path):
    """Params compare by value: the same config with its sections' keys in reverse order plans no job."""
    workdir, _ = pipeline_run

    def reversed_keys(value):
        return {key: reversed_keys(value[key]) for key in reversed(value)} if isinstance(value, dict) else value

    base = tmp_path / "config.yaml"
    base.write_text(yaml.safe_dump(reversed_keys(yaml.safe_load((REPO / "config.yaml").read_text())),
                                   sort_keys=False))
    assert list(yaml.safe_load(base.read_text())["measurement"])[0] == "pin_cpu"
    assert scheduled_jobs(snakemake(workdir, base=base, args=["-n"]).stdout) == {}


def test_settings_that_cannot_change_a_result_rerun_nothing(pipeline_run, tmp_path):
    """Timeouts and where nsys lives reach the jobs as resources, not params."""
    workdir, _ = pipeline_run
    changed = overlay(tmp_path, "timeouts", {"triton": {"startup_timeout_s": 121, "stop_grace_s": 11},
                                             "profiling": {"nsys": {"executable": "/opt/nsight/bin/nsys",
                                                                    "timeout_s": 99}}})
    assert scheduled_jobs(snakemake(workdir, changed, args=["-n"]).stdout) == {}


def test_the_number_of_distinct_batches_reruns_the_timing_cells_only(pipeline_run, tmp_path):
    """With max_length padding every batch runs the same kernels: the profiles stay (dynamic ones would rerun)."""
    workdir, _ = pipeline_run
    jobs = scheduled_jobs(snakemake(workdir, overlay(tmp_path, "m", {"measurement": {"max_distinct_batches": 3}}),
                                    args=["-n"]).stdout)
    # the pair (eager against itself at batch 1) cycles through the same batches
    assert jobs == {"benchmark_cell": len(ENGINES) * 2, "pair": 1, "pair_table": 1, "aggregate": 1, "report": 1,
                    "all": 1}


def test_a_deleted_result_is_planned_again_with_aggregate_and_report(pipeline_run, tmp_path):
    workdir, _ = pipeline_run
    deleted = [workdir / "results/bench/eager/fp32/bs4_seq32_max_length.json",
               workdir / "results/profile/torch/torchscript/fp32/bs1_seq32_max_length.json"]
    kept = [tmp_path / path.name for path in deleted]
    for path, copy in zip(deleted, kept):
        path.rename(copy)
    try:
        dry = snakemake(workdir, args=["-n"]).stdout
    finally:
        for path, copy in zip(deleted, kept):
            copy.rename(path)
    assert scheduled_jobs(dry) == {"benchmark_cell": 1, "profile_torch": 1, "aggregate": 1, "report": 1, "all": 1}
    assert "output: results/bench/eager/fp32/bs4_seq32_max_length.json" in dry


def test_changing_the_model_reruns_everything_downstream(pipeline_run, tmp_path):
    workdir, _ = pipeline_run
    jobs = scheduled_jobs(snakemake(workdir, overlay(tmp_path, "model", {"model": {"config_overrides": {
        "num_hidden_layers": 3}}}), args=["-n"]).stdout)
    assert "dataset" not in jobs
    assert jobs["model"] == 1 and jobs["tokenize"] == 1 and jobs["reference"] == 1
    assert jobs["export_torchscript"] == 1 and jobs["triton_repository"] == 1
    assert jobs["load_sweep"] == len(SERVED)  # one concurrency sweep per served engine
    assert jobs["accuracy"] == len(ENGINES) and jobs["benchmark_cell"] == len(ENGINES) * 2
    assert jobs["report"] == 1


def test_served_cells_report_the_server_side_breakdown_and_keep_the_server_log(table, pipeline_run):
    workdir, _ = pipeline_run
    served = table[table.engine.isin(SERVED) & (table.status == "ok")]
    assert len(served) == len(SERVED) * 2
    assert (served.server_server_total_ms > 0).all() and (served.server_compute_infer_ms > 0).all()
    # the client waits at least as long as the server queues and computes its request. Not the server's total
    # (`success`) time: with equal request counts it was seen 0.06 ms above the client's mean (triton, batch 4),
    # as it can still run after the response has left
    phases = [f"server_{phase}_ms" for phase in ("queue", "compute_input", "compute_infer", "compute_output")]
    assert (served.mean_ms >= served[[c for c in phases if c in served]].fillna(0).sum(axis=1)).all()
    # the server's statistics window opens after the warm-up: it counts exactly the timed requests
    for row in served.itertuples():
        result = json.loads((workdir / row.result_file).read_text())
        assert result["server"]["requests"] == result["latency"]["iterations"] == row.iterations
    assert set(served.client) == {"python"}  # every served result names its client (config.test.yaml: python)
    for row in served.itertuples():
        server_log = (workdir / row.result_file).with_suffix(".server.log")
        assert SERVER_LOG_MARKS[row.engine] in server_log.read_text()


def test_concurrency_sweep_results(pipeline_run):
    workdir, _ = pipeline_run
    serving = pd.read_csv(workdir / "results" / "aggregate" / "serving.csv")
    ok = serving[serving.status == "ok"]
    assert set(ok.engine) == set(SERVED)
    for engine in SERVED:
        levels = ok[ok.engine == engine].set_index("concurrency")
        # the 4 clients ran as threads of 2 processes (config.test.yaml: client_processes 2)
        assert levels.client_processes.to_dict() == {1: 1, 4: 2}, engine
    assert set(ok.client) == {"python"}
    assert (ok.throughput_samples_per_s > 0).all() and (ok.p50_ms <= ok.p99_ms).all()


def test_no_server_outlives_the_run(pipeline_run):
    """No Triton server and no Dynamo frontend or worker started in this run's folder is left."""
    workdir, _ = pipeline_run
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if any(name in cmdline for name in ("tritonserver", "dynamo.frontend", "dynamo_worker")) and (
                str(workdir) in cmdline or cwd == str(workdir)):
            leftovers.append(cmdline)
    assert leftovers == []


def test_snakemake_report_builds_from_the_declared_figures(pipeline_run):
    workdir, _ = pipeline_run
    target = workdir / "snakemake_report.html"
    snakemake(workdir, args=["--report", str(target)])
    html = target.read_text(errors="replace")
    assert "latency_vs_batch.png" in html and "throughput_vs_concurrency.png" in html


PROFILED = ["eager", "torchscript", "triton-python-grpc"]  # tests/config.test.yaml: profiling.engines


def test_profiles_explain_each_profiled_cell(pipeline_run):
    workdir, _ = pipeline_run
    profiles = pd.read_csv(workdir / "results" / "aggregate" / "profiles.csv")
    # profiled engines x fp32 x batch 1 x both profilers
    assert len(profiles) == len(PROFILED) * 2
    in_process = profiles[(profiles.tool == "torch") & (profiles.engine != "triton-python-grpc")]
    assert (in_process.status == "ok").all(), in_process[["engine", "status", "reason"]]
    assert (in_process.cpu_ops_per_iter > 0).all() and (in_process.wall_ms_per_iter > 0).all()
    served = profiles[(profiles.tool == "torch") & (profiles.engine == "triton-python-grpc")]
    assert (served.status == "skipped").all() and served.reason.str.contains("server process").all()
    nsys = profiles[profiles.tool == "nsys"]
    assert (nsys.status == "skipped").all() and nsys.reason.str.contains("CPU").all()
    tops = pd.read_csv(workdir / "results" / "aggregate" / "profile_tops.csv")
    assert set(tops[tops.kind == "op"].engine) == {"eager", "torchscript"}
    assert tops[tops.kind == "op"].name.str.startswith("aten::").any()
    # the profiler's own files: a gzipped Chrome trace and the op table
    for row in in_process.itertuples():
        folder = workdir / row.result_file.removesuffix(".json")
        with gzip.open(folder / "trace.json.gz", "rt") as handle:
            assert json.load(handle)["traceEvents"]
        assert pd.read_csv(folder / "ops.csv").calls.sum() > 0


def test_report_explains_why_with_profiles(pipeline_run):
    workdir, _ = pipeline_run
    report = (workdir / "results" / "report" / "report.md").read_text()
    section = report.split("## Why: profiles", 1)[1].split("\n## ", 1)[0]
    assert "### Top operators" in section and "aten::" in section
    assert "nsys profiles skipped for 3 cells: Nsight Systems traces CUDA" in section
    why = section.split("### Why, against eager", 1)[1]
    assert "At batch 1 (fp32, seq 32, max_length padding), torchscript runs" in why and "ATen operator calls per request" in why


def test_profiling_more_cells_schedules_only_profile_jobs(pipeline_run, tmp_path):
    workdir, _ = pipeline_run
    jobs = scheduled_jobs(snakemake(workdir, overlay(tmp_path, "p", {"profiling": {"engines": [
        "eager", "torchscript", "triton-python-grpc", "compile-default"]}}), args=["-n"]).stdout)
    assert jobs == {"profile_torch": 1, "profile_nsys": 1, "aggregate": 1, "report": 1, "all": 1}


def test_a_sweep_in_pieces_merges_into_one_report(pipeline_run, tmp_path):
    """A second run times only eager and merges an earlier piece that timed the other engines."""
    workdir, _ = pipeline_run
    piece = tmp_path / "piece_a" / "results"
    (piece / "aggregate").mkdir(parents=True)
    for name in ("cells.csv", "serving.csv", "profiles.csv", "profile_tops.csv"):
        frame = pd.read_csv(workdir / "results" / "aggregate" / name)
        frame[frame.engine != "eager"].to_csv(piece / "aggregate" / name, index=False)
    # piece b: a copy of the finished run (its eager results are done), now sweeping eager only
    piece_b = tmp_path / "piece_b"
    shutil.copytree(workdir, piece_b, symlinks=True)
    eager_only = overlay(tmp_path, "b", {"sweep": {"engines": ["eager"], "precisions": ["fp32"]},
                                         "profiling": {"engines": ["eager"]}, "merge_pieces": [str(piece)]})
    assert scheduled_jobs(snakemake(piece_b, eager_only, args=["-n"]).stdout) == {
        "aggregate": 1, "report": 1, "all": 1}
    snakemake(piece_b, eager_only)
    cells = pd.read_csv(piece_b / "results" / "aggregate" / "cells.csv")
    assert set(cells.engine) == set(ENGINES)
    assert set(cells[cells.engine == "eager"].piece) == {"this run"}
    assert set(cells[cells.engine != "eager"].piece) == {str(piece)}
    report = (piece_b / "results" / "report" / "report.md").read_text()
    assert "| torchscript | fp32 |" in report and "| triton-python-grpc | fp32 |" in report
    # the earlier piece's eager cells measured again on the same machine: refused, naming the cell
    (piece / "aggregate" / "cells.csv").write_text((workdir / "results" / "aggregate" / "cells.csv").read_text())
    proc = snakemake(piece_b, eager_only, check=False)
    assert proc.returncode != 0
    assert "cells measured in more than one piece" in proc.stderr and "eager/fp32/bs1/seq32/max_length" in proc.stderr
