"""perf_analyzer as the load client: its recorded CSV parsed, the client choice, and (where the binary runs)
a real perf_analyzer against a real tritonserver on CPU."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import FAST_MEASUREMENT, REPO
from workflow_scripts.results import validate_cell_result
from workflow_scripts.serving import perf_analyzer

FIXTURES = REPO / "tests" / "fixtures" / "perf_analyzer" / "2.60.0"


def test_recorded_csvs_parse_into_the_split_that_sums_to_the_client_latency():
    grpc, http, busy = (perf_analyzer.parse_csv(FIXTURES / f"pa_{name}.csv")[0]
                        for name in ("grpc_c1", "http_c1", "grpc_c64"))
    assert grpc["concurrency"] == 1 and busy["concurrency"] == 64
    assert grpc["latency_ms"]["p50"] == pytest.approx(2.036) and http["latency_ms"]["p50"] == pytest.approx(1.943)
    assert grpc["split_ms"] == pytest.approx({"client": 0.005, "network": 0.293, "client_and_network": 0.298,
                                              "queue": 0.209, "compute_input": 0.021, "compute_infer": 1.461,
                                              "compute_output": 0.077})
    assert busy["samples_per_s"] == pytest.approx(5763.33)
    assert busy["split_ms"]["queue"] == pytest.approx(2.991) and busy["split_ms"]["compute_infer"] == pytest.approx(6.263)
    for level in (grpc, http, busy):  # the parts add up to the mean (at 64 clients the server's accounted time
        # exceeded the client's wait, perf_analyzer warned, and the network part is clamped at 0)
        parts = sum(v for k, v in level["split_ms"].items() if k != "client_and_network")
        assert parts == pytest.approx(level["latency_ms"]["mean"], rel=0.005)
    assert busy["split_ms"]["network"] == 0
    # the same numbers its console printed
    assert "p50 latency: 2036 usec" in (FIXTURES / "pa_grpc_c1.stdout").read_text()


def test_a_csv_without_the_verbose_columns_is_refused_by_name(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text("Concurrency,Inferences/Second,Client Send,Client Recv,p50 latency\n1,480,4,1,2036\n")
    with pytest.raises(ValueError, match="no column 'Network\\+Server Send/Recv'.*--verbose-csv"):
        perf_analyzer.parse_csv(plain)
    (tmp_path / "empty.csv").write_text("Concurrency,Inferences/Second\n")
    with pytest.raises(ValueError, match="no measurement row"):
        perf_analyzer.parse_csv(tmp_path / "empty.csv")


def test_a_parsed_level_fits_the_one_result_schema_and_invents_no_spread():
    level = perf_analyzer.parse_csv(FIXTURES / "pa_grpc_c1.csv")[0]
    latency = perf_analyzer.latency_result(level)
    twin = json.loads((FIXTURES / "twin_compile-reduce-overhead_bf16_bs1_seq128.json").read_text())
    served = {**twin, "cell": {**twin["cell"], "engine": "triton-python-grpc"}, "latency": latency,
              "throughput_samples_per_s": latency["wall_ms"]["throughput_samples_per_s"],
              "load_client": {"name": "perf_analyzer"}, "latency_split_ms": level["split_ms"]}
    validate_cell_result(served)
    assert latency["wall_ms"]["std"] is None and latency["wall_ms"]["p50_ci95"] == [None, None]
    # the serving cost at batch 1 on that card, as the README states it
    assert level["latency_ms"]["p50"] - twin["latency"]["wall_ms"]["p50"] == pytest.approx(1.268, abs=0.001)


def test_input_data_carry_the_rows_as_perf_analyzer_reads_them(tmp_path):
    ids = np.arange(6, dtype=np.int64).reshape(2, 3)
    path = perf_analyzer.write_input_data(ids, np.ones_like(ids), tmp_path / "data.json")
    data = json.loads(path.read_text())["data"]
    assert data[1] == {"input_ids": {"content": [3, 4, 5], "shape": [3]},
                       "attention_mask": {"content": [1, 1, 1], "shape": [3]}}


def test_client_choice(monkeypatch, tmp_path):
    missing = str(tmp_path / "perf_analyzer")
    assert perf_analyzer.choose_client("python", missing) == ("python", None)
    client, why = perf_analyzer.choose_client("auto", missing)
    assert client == "python" and "no " in why
    with pytest.raises(perf_analyzer.PerfAnalyzerError, match="triton.load.client is perf_analyzer, but"):
        perf_analyzer.choose_client("perf_analyzer", missing)
    with pytest.raises(ValueError, match="expected one of auto, perf_analyzer, python"):
        perf_analyzer.choose_client("c++")
    failing = tmp_path / "old_glibc"  # a binary whose loader refuses it, as on Debian 12
    failing.write_text("#!/bin/sh\necho \"perf_analyzer: version \\`GLIBC_2.38' not found\" >&2\nexit 1\n")
    failing.chmod(0o755)
    assert perf_analyzer.choose_client("auto", str(failing)) == (
        "python", f"{failing} does not run here (exit code 1): perf_analyzer: version `GLIBC_2.38' not found")
    # a binary that loads is asked for its version, as the real one answers it (its --help exits non-zero)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # the stand-in's python
    assert perf_analyzer.choose_client("auto", str(STAND_IN)) == ("perf_analyzer", None)


PERF_ANALYZER_UNUSABLE = perf_analyzer.unusable_reason()


@pytest.mark.skipif(PERF_ANALYZER_UNUSABLE is not None, reason=f"perf_analyzer: {PERF_ANALYZER_UNUSABLE}")
def test_real_perf_analyzer_measures_a_real_server(tiny_model, tmp_path):
    """Where the binary runs (Ubuntu 24.04, glibc >= 2.38): the load step with client perf_analyzer against
    the bundled tritonserver on CPU writes schema-valid results that name their client and carry the split."""
    from workflow_scripts import load_sweep
    from workflow_scripts.serving import model_repository

    root, _ = tiny_model
    settings = {"max_batch_size": 8, "instance_count": 1, "python_compile_mode": "none",
                "dynamic_batching": {"preferred_batch_sizes": [4, 8], "max_queue_delay_us": 100}}
    repository = model_repository.build("python", "fp32", 32, root / "model", None, "cpu", settings,
                                        tmp_path / "repo")
    cell = {"engine": "triton-python-grpc", "precision": "fp32", "seq_len": 32, "padding": "max_length",
            "device": "cpu"}
    engine_settings = {"launcher": "local", "startup_timeout_s": 120, "stop_grace_s": 10}
    load = {"concurrency": [1, 4], "seconds": 1.0, "warmup_seconds": 0.5, "client_processes": 1,
            "client": "perf_analyzer", "perf_analyzer": {"executable": "perf_analyzer", "stability_percentage": 50,
                                                         "max_trials": 10}}
    outs = [str(tmp_path / f"c{n}.json") for n in (1, 4)]
    results = load_sweep.sweep(cell, root / "model", root / "tokens.pt", {"triton_python": repository},
                               engine_settings, load, outs)
    for result in results:
        assert result["status"] == "ok", result["reason"]
        assert result["load_client"]["name"] == "perf_analyzer"
        split = result["latency_split_ms"]
        assert split["compute_infer"] > 0 and result["throughput_samples_per_s"] > 0
        assert Path(result["load_client"]["csv"]).exists()


STAND_IN = REPO / "tests" / "stand_ins" / "perf_analyzer" / "perf_analyzer"
REPOSITORY_SETTINGS = {"max_batch_size": 8, "instance_count": 1, "python_compile_mode": "none",
                       "dynamic_batching": {"preferred_batch_sizes": [4, 8], "max_queue_delay_us": 100}}


@pytest.fixture(scope="module")
def repository(tiny_model, tmp_path_factory):
    from workflow_scripts.serving import model_repository

    root, _ = tiny_model
    return model_repository.build("python", "fp32", 32, root / "model", None, "cpu", REPOSITORY_SETTINGS,
                                  tmp_path_factory.mktemp("pa_repo"))


def test_served_cell_and_load_level_timed_by_a_perf_analyzer_stand_in(tiny_model, repository, tmp_path, monkeypatch):
    """perf_analyzer here is a STAND-IN (tests/stand_ins/perf_analyzer): it takes the real one's options, sends
    real requests to the real tritonserver and writes the real one's CSV columns. What is checked is the
    project's side: the command line it builds (model, URL, protocol, batch, concurrency, input rows), the CSV
    read back into the one result schema, and every served result naming its client."""
    from workflow_scripts import benchmark, load_sweep

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # the stand-in's python
    root, _ = tiny_model
    client = {"client": "perf_analyzer", "perf_analyzer": {"executable": str(STAND_IN), "stability_percentage": 10,
                                                           "max_trials": 10}}
    engine_settings = {"launcher": "local", "startup_timeout_s": 120, "stop_grace_s": 10, **client}
    cell = {"engine": "triton-python-grpc", "precision": "fp32", "batch_size": 4, "seq_len": 32,
            "padding": "max_length", "device": "cpu"}
    measurement = {**FAST_MEASUREMENT, "windows": 5, "window_seconds": 0.1, "max_distinct_batches": 2}
    served = benchmark.run_cell(cell, root / "model", root / "tokens.pt", root / "reference.pt",
                                {"triton_python": repository}, engine_settings, measurement,
                                {"max_abs_diff": 1e-3, "min_agreement": 0.99}, str(tmp_path / "cell.json"))
    assert served["status"] == "ok", served["reason"]
    assert served["load_client"]["name"] == "perf_analyzer"
    assert served["load_client"]["version"] == "Perf Analyzer Version 2.60.0 (commit stand-in)"
    argv = Path(served["load_client"]["log"]).read_text().splitlines()[0].split()
    assert argv[argv.index("-b") + 1] == "4" and argv[argv.index("--concurrency-range") + 1] == "1"
    assert argv[argv.index("--measurement-interval") + 1] == "500" and argv[argv.index("-i") + 1] == "grpc"
    assert not (tmp_path / "cell.perf_analyzer_input.json").exists()  # the rows are not left behind
    assert served["server"]["requests"] > 0 and served["server"]["mean_batch_per_execution"] == pytest.approx(4)
    assert served["latency_split_ms"]["compute_infer"] > 0
    assert served["throughput_samples_per_s"] > 0 and served["latency"]["wall_ms"]["std"] is None

    outs = [str(tmp_path / f"c{n}.json") for n in (1, 2)]
    load = {"concurrency": [1, 2], "seconds": 0.5, "warmup_seconds": 0.1, "client_processes": 1, **client}
    levels = load_sweep.sweep({k: v for k, v in cell.items() if k != "batch_size"}, root / "model",
                              root / "tokens.pt", {"triton_python": repository},
                              {k: v for k, v in engine_settings.items() if k not in client}, load, outs)
    for level, concurrency in zip(levels, (1, 2)):
        assert level["status"] == "ok", level["reason"]
        assert level["load_client"]["name"] == "perf_analyzer" and level["load_client"]["clients"] == concurrency
        assert level["latency_split_ms"]["queue"] >= 0 and level["latency"]["wall_ms"]["p50"] > 0
        assert level["server"]["requests"] > 0
    assert json.loads(Path(outs[1]).read_text())["load_client"]["name"] == "perf_analyzer"


def test_a_perf_analyzer_that_fails_is_named_with_its_last_words(tmp_path):
    failing = tmp_path / "perf_analyzer"
    failing.write_text("#!/bin/sh\necho 'Request concurrency: 1'\n"
                       "echo 'Failed to obtain stable measurement within 10 measurement windows' >&2\nexit 2\n")
    failing.chmod(0o755)
    console = tmp_path / "console.log"
    with pytest.raises(perf_analyzer.PerfAnalyzerError,
                       match=r"exited with code 2: .*Failed to obtain stable measurement within 10"):
        perf_analyzer.run([str(failing), "-m", "x"], console, timeout_s=30)
    assert console.read_text().startswith(f"$ {failing} -m x\n")  # the command line, then its output
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    with pytest.raises(perf_analyzer.PerfAnalyzerError, match="ran past 1 s"):
        perf_analyzer.run([str(slow)], console, timeout_s=1)


def served_result(twin: dict, level: dict, concurrency: int | None = None) -> dict:
    """A served result as the project writes it, from the recorded perf_analyzer level on the twin's card."""
    cell = {**twin["cell"], "engine": "triton-python-grpc"}
    result = {**twin, "cell": cell, "latency": perf_analyzer.latency_result(level),
              "throughput_samples_per_s": level["samples_per_s"], "load_client": {"name": "perf_analyzer"},
              "latency_split_ms": level["split_ms"], "server": {"requests": 42937, "executions": 842,
                                                                "mean_batch_per_execution": 42937 / 842}}
    if concurrency:
        result.update(kind="load", cell={**cell, "batch_size": 1, "concurrency": concurrency})
    return result


def test_report_splits_served_requests_against_in_process(tmp_path):
    """The report's serving tables from the recorded H200 numbers: perf_analyzer's split, and the Python
    client's (server phases, the rest as client+network)."""
    from workflow_scripts import aggregate
    from workflow_scripts.report import serving as report

    twins = {name: json.loads((FIXTURES / f"twin_compile-reduce-overhead_bf16_{name}_seq128.json").read_text())
             for name in ("bs1", "bs64")}
    grpc = perf_analyzer.parse_csv(FIXTURES / "pa_grpc_c1.csv")[0]
    busy = perf_analyzer.parse_csv(FIXTURES / "pa_grpc_c64.csv")[0]
    python_client = {**served_result(twins["bs1"], grpc), "load_client": {"name": "python"},
                     "latency_split_ms": None, "server": {"requests": 100, "queue_ms": 0.2, "compute_input_ms": 0.02,
                                                          "compute_infer_ms": 1.5, "compute_output_ms": 0.08}}
    python_client["cell"] = {**python_client["cell"], "engine": "triton-python-http"}
    python_client["latency"] = {**python_client["latency"], "iterations": 100}  # the 100 the server counted
    results = {"twin1": twins["bs1"], "twin64": twins["bs64"], "served": served_result(twins["bs1"], grpc),
               "python": python_client, "c64": served_result(twins["bs1"], busy, concurrency=64)}
    paths = []
    for name, result in results.items():
        validate_cell_result(result)
        (tmp_path / f"{name}.json").write_text(json.dumps(result))
        paths.append(str(tmp_path / f"{name}.json"))
    # as engines.roles() gives them with triton.repository.python_compile_mode: reduce-overhead
    roles = {"compile-reduce-overhead": {"served": False, "twin": None},
             **{name: {"served": True, "twin": "compile-reduce-overhead"}
                for name in ("triton-python-grpc", "triton-python-http")}}
    cells, serving, _, _ = aggregate.aggregate(paths, roles)

    overhead = report.serving_overhead(cells).set_index("served engine")
    pa = overhead.loc["triton-python-grpc"]
    assert pa["client"] == "perf_analyzer" and pa["overhead ms"] == pytest.approx(1.268, abs=0.001)
    assert (pa["client ms"], pa["network+serialisation ms"], pa["queue ms"], pa["compute input ms"],
            pa["compute infer ms"], pa["compute output ms"]) == (0.005, 0.293, 0.209, 0.021, 1.461, 0.077)
    python = overhead.loc["triton-python-http"]
    assert python["client"] == "python" and pd.isna(python["client ms"]) and python["queue ms"] == 0.2
    assert python["client+network ms"] == pytest.approx(2.068 - 1.8, abs=0.001)  # mean minus the server phases

    level = report.concurrency_table(serving, cells).iloc[0]
    shown = report.shown_numbers(report.concurrency_table(serving, cells)).iloc[0]
    assert (shown["requests/s"], shown["p50 ms"], shown["share of in-process"]) == (
        "5,763.3", f"{level['p50 ms']:.3f}", f"{level['share of in-process']:.1%}")
    assert level["client"] == "perf_analyzer" and level["requests/s"] == pytest.approx(5763.33)
    in_process = 64 * 1000 / twins["bs64"]["latency"]["wall_ms"]["p50"]  # batch / p50, the report's throughput
    assert level["share of in-process"] == pytest.approx(5763.33 / in_process, abs=1e-3)
    assert level["mean server batch"] == pytest.approx(51.0, abs=0.1) and level["compute infer ms"] == 6.263
