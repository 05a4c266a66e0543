"""Profiling steps on CPU (PyTorch profiler for real, nsys skipped) and the pure parts of the analysis."""
import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from workflow_scripts.experiment import ConfigError, profiled_axes
from workflow_scripts.profiling import kernels, nsys_profile, nsys_stats, torch_profile
from workflow_scripts.report import why as explain
from workflow_scripts.report.context import ReportContext

SETTINGS = {"iterations": 4, "warmup_iters": 2, "max_distinct_batches": 2, "timeout_s": 60}


def cell(engine="eager", batch_size=2):
    return {"engine": engine, "precision": "fp32", "batch_size": batch_size, "seq_len": 32,
            "padding": "max_length", "device": "cpu"}


def test_kernel_names_fall_into_categories():
    assert kernels.category("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64") == "GEMM"
    assert kernels.category("triton_tem_fused_addmm_0") == "GEMM"
    assert kernels.category("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits<64>>") == "attention"
    assert kernels.category("fmha_cutlassF_bf16_aligned_64x64_rf_sm80") == "attention"
    assert kernels.category("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float>") == \
        "normalisation/elementwise"
    assert kernels.category("triton_per_fused_add_native_layer_norm_3") == "normalisation/elementwise"
    assert kernels.category("Memcpy HtoD (Pageable -> Device)") == "copies"
    assert kernels.category("some_custom_kernel") == "other"


def test_summary_is_per_iteration():
    kernel_rows = [{"name": "ampere_sgemm_128x64_tn", "total_ms": 8.0, "calls": 40},
                   {"name": "vectorized_layer_norm_kernel", "total_ms": 2.0, "calls": 20}]
    api = [{"name": "cudaLaunchKernel", "total_ms": 1.0, "calls": 60}, {"name": "cudaGraphLaunch_v10000",
                                                                         "total_ms": 0.5, "calls": 4}]
    summary = kernels.summarize(kernel_rows, api, iterations=4, wall_ms_per_iter=5.0, memcpy_ms=0.4)
    assert summary["kernels_per_iter"] == 15 and summary["kernel_launches_per_iter"] == 15
    assert summary["graph_launches_per_iter"] == 1
    assert summary["category_ms_per_iter"]["GEMM"] == pytest.approx(2.0)
    assert summary["category_ms_per_iter"]["copies"] == pytest.approx(0.1)
    assert summary["gpu_busy_ms_per_iter"] == pytest.approx(2.6)
    assert summary["gpu_busy_fraction"] == pytest.approx(2.6 / 5.0)
    assert summary["top_kernels"][0]["mean_us"] == pytest.approx(200.0)
    assert summary["top_kernels"][0]["time_fraction"] == pytest.approx(0.8)


def test_torch_profiler_writes_tables_trace_and_summary(tiny_model, tmp_path):
    root, _ = tiny_model
    out, tables = tmp_path / "eager.json", tmp_path / "eager"
    result = torch_profile.profile_cell(cell(), root / "model", root / "tokens.pt", {}, {}, SETTINGS, out, tables)
    assert result["status"] == "ok", result["reason"]
    profile = result["profile"]
    assert profile["iterations"] == 4 and profile["wall_ms_per_iter"] > 0
    assert profile["gpu_busy_ms_per_iter"] is None  # CPU: no GPU activity
    assert profile["cpu_ops_per_iter"] > 10
    assert any(op["name"] == "aten::addmm" for op in profile["top_ops"])  # BERT's linear layers
    ops = pd.read_csv(tables / "ops.csv")
    assert ops.set_index("name").loc["aten::addmm", "calls"] % 4 == 0  # same calls in every iteration
    with gzip.open(tables / "trace.json.gz", "rt") as handle:
        names = {event.get("name") for event in json.load(handle)["traceEvents"]}
    assert torch_profile.ITERATION_LABEL in names
    assert json.loads(out.read_text())["profiler"] == "torch"


def progress_lines(caplog) -> list[str]:
    """What the `progress` logger (the console's lines) said during the test."""
    return [record.getMessage() for record in caplog.records if record.name == "progress"]


def test_torch_profiler_skips_served_engines_and_records_unavailable_ones(tiny_model, tmp_path, caplog):
    root, _ = tiny_model
    caplog.set_level("INFO", logger="progress")
    served = torch_profile.profile_cell(cell("triton-python-grpc"), root / "model", root / "tokens.pt", {}, {},
                                        SETTINGS, tmp_path / "t.json", tmp_path / "t")
    assert served["status"] == "skipped" and "server process" in served["reason"]
    # the progress logger's lines only: an earlier test's logging set-up may let other loggers' INFO through
    assert progress_lines(caplog) == [f"profile torch triton-python-grpc fp32 bs2 seq32 max_length: skipped: "
                               f"{served['reason']}"]  # its one line
    fp16 = torch_profile.profile_cell({**cell(), "precision": "fp16"}, root / "model", root / "tokens.pt", {}, {},
                                      SETTINGS, tmp_path / "h.json", tmp_path / "h")
    assert fp16["status"] == "skipped" and "fp16" in fp16["reason"]


def test_nsys_is_skipped_with_the_reason_without_gpu_or_executable(tiny_model, tmp_path, caplog):
    root, _ = tiny_model
    caplog.set_level("INFO", logger="progress")
    result = nsys_profile.profile_cell(cell(), root / "model", root / "tokens.pt", {}, {}, SETTINGS, "nsys",
                                       tmp_path / "n.json", tmp_path / "n")
    assert result["status"] == "skipped" and "CPU" in result["reason"]
    # the console's one line for the job: the skip and its reason, not a start line before it
    assert progress_lines(caplog) == [f"profile nsys eager fp32 bs2 seq32 max_length: skipped: {result['reason']}"]
    assert shutil.which("no-such-nsys") is None
    reason = nsys_profile.unavailable_reason("cuda", "no-such-nsys")
    assert "nsys not found" in reason and "profiling.nsys.executable: no-such-nsys" in reason


NSYS_STAND_IN = Path(__file__).parent / "stand_ins" / "nsight" / "nsys"


@pytest.mark.parametrize("modes,status,reason", [
    ("old-names", "ok", None),  # an nsys before 2023.2 knows only `gpukernsum`, `cudaapisum`, ...
    ("stats-fails", "failed", "could not export the cuda_gpu_kern_sum report under any of its names"),
    ("profile-fails", "failed", "nsys profile exited with 1"),
    ("profile-hangs", "failed", "nsys profile ran longer than profiling.nsys.timeout_s (2 s) and was killed"),
])
def test_every_nsys_failure_ends_as_a_profile_result_and_the_profile_section_builds(tiny_model, tmp_path,
                                                                                   monkeypatch, modes, status,
                                                                                   reason):
    """nsys is a STAND-IN (tests/stand_ins/nsight/nsys) serving recorded `nsys stats` CSVs; the cell claims
    CUDA, and only the GPU's name (which needs a GPU) is left out of its environment."""
    from workflow_scripts import environment
    from workflow_scripts.aggregate import TOP_COLUMNS, profile_row

    root, _ = tiny_model
    monkeypatch.setattr(environment, "gpu_info", lambda device: {"gpu_name": None, "gpu_uuid": None,
                                                                  "gpu_driver": None, "cuda": None})
    monkeypatch.setenv("NSYS_STANDIN", modes)
    monkeypatch.setenv("NSYS_STANDIN_CSV", str(RECORDED / "eager_fp32_bs1_seq128"))
    out = tmp_path / "n.json"
    result = nsys_profile.profile_cell({**cell(), "device": "cuda"}, root / "model", root / "tokens.pt", {}, {},
                                       {**SETTINGS, "timeout_s": 2}, str(NSYS_STAND_IN), out, tmp_path / "n")
    assert json.loads(out.read_text())["status"] == result["status"] == status
    if reason:
        assert reason in result["reason"] and result["profile"] is None
    else:
        assert result["profile"]["kernels_per_iter"] == 325 and (tmp_path / "n" / "stats_nvtx_sum.csv").exists()
    row = pd.DataFrame([profile_row(result, str(out))])
    blocks = explain.blocks(ReportContext(table=pd.DataFrame(), profiles=row, profile_tops=pd.DataFrame(columns=TOP_COLUMNS),
                                          figure_paths={"kernel_breakdown": str(tmp_path / "kernels.png")}))
    assert any(reason in text for kind, text, *_ in blocks if kind == "p") if reason else len(blocks) > 3


def test_profiled_cells_come_from_the_sweep():
    config = {"device": "cpu", "sweep": {"engines": ["eager", "torchscript"], "precisions": ["fp32", "bf16"],
                                         "batch_sizes": [8, 1, 64]},
              "profiling": {"engines": "all", "precisions": ["bf16"], "batch_sizes": "ends"}}
    assert profiled_axes(config) == {"engines": ["eager", "torchscript"], "precisions": ["bf16"],
                                     "batch_sizes": [1, 64]}
    config["profiling"]["batch_sizes"] = "all"
    assert profiled_axes(config)["batch_sizes"] == [1, 8, 64]
    config["profiling"]["engines"] = ["compile-default"]
    with pytest.raises(ConfigError, match=r"profiling.engines has \['compile-default'\].*sweep.engines"):
        profiled_axes(config)


def test_why_sentence_compares_launches_and_busy_time():
    columns = explain.CELL + ["tool", "kernel_launches_per_iter", "graph_launches_per_iter", "kernels_per_iter",
                              "gpu_busy_ms_per_iter", "gpu_busy_fraction", "GEMM_ms_per_iter", "cpu_ops_per_iter",
                              "wall_ms_per_iter", "status"]
    rows = [["eager", "bf16", 1, 128, "max_length", "nsys", 410, 0, 410, 1.2, 0.31, 0.5, None, 3.9, "ok"],
            ["compile-reduce-overhead", "bf16", 1, 128, "max_length", "nsys", 0, 1, 130, 0.7, 0.92, 0.4, None, 0.76,
             "ok"]]
    chosen = explain.chosen_profiles(pd.DataFrame(rows, columns=columns))
    (line,) = explain.why_paragraphs(chosen, {"engine": "eager", "precision": "fp32"})
    assert line.startswith("At batch 1 (bf16, seq 128, max_length padding), compile-reduce-overhead makes 1 CUDA graph launch(es) and "
                           "0 kernel launch(es) per request where eager makes 410")
    assert "runs 130 kernels instead of 410" in line and "(92% vs 31% of the wall time)" in line


def test_nsys_stats_csv_reduce_to_the_summary(tmp_path):
    """A constructed example in the column layout `nsys stats --format csv` writes (not a recorded profile)."""
    prefix = tmp_path / "stats"
    (tmp_path / "stats_cuda_gpu_kern_sum.csv").write_text(
        "Time (%),Total Time (ns),Instances,Avg (ns),Med (ns),Min (ns),Max (ns),StdDev (ns),Name\n"
        '60.0,600000,20,30000.0,30000.0,29000,31000,500.0,"sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n"\n'
        '40.0,400000,40,10000.0,10000.0,9000,11000,500.0,"void at::native::vectorized_layer_norm_kernel<c10::BFloat16>"\n')
    (tmp_path / "stats_cuda_api_sum.csv").write_text(
        "Time (%),Total Time (ns),Num Calls,Avg (ns),Med (ns),Min (ns),Max (ns),StdDev (ns),Name\n"
        "90.0,900000,10,90000.0,90000.0,80000,100000,1000.0,cudaGraphLaunch_v10000\n"
        "10.0,100000,20,5000.0,5000.0,4000,6000,100.0,cudaLaunchKernel\n")
    (tmp_path / "stats_nvtx_sum.csv").write_text(
        "Time (%),Total Time (ns),Instances,Avg (ns),Med (ns),Min (ns),Max (ns),StdDev (ns),Style,Range\n"
        "100.0,2000000,10,200000.0,200000.0,190000,210000,1000.0,PushPop,:iteration\n")
    kernel_rows = nsys_stats.kernels(prefix)
    assert kernel_rows.total_ms.tolist() == [0.6, 0.4] and kernel_rows.calls.tolist() == [20, 40]
    assert nsys_stats.iteration_range(prefix) == (10, 0.2)
    assert nsys_stats.memory_copies(prefix).empty  # no copies in the capture: no file, no rows
    summary = nsys_profile.summarize(prefix, {"iterations": 10, "wall_ms_per_iter": 0.25}, "2025.3.1", tmp_path,
                                     tmp_path / "profile.nsys-rep")
    assert summary["kernels_per_iter"] == 6 and summary["graph_launches_per_iter"] == 1
    assert summary["kernel_launches_per_iter"] == 2
    assert summary["wall_ms_per_iter"] == 0.2  # from the NVTX ranges nsys captured
    assert summary["gpu_busy_ms_per_iter"] == pytest.approx(0.1)
    assert summary["category_ms_per_iter"]["GEMM"] == pytest.approx(0.06)
    assert pd.read_csv(tmp_path / "kernels.csv").category.tolist() == ["GEMM", "normalisation/elementwise"]


def test_the_profile_section_builds_without_any_profile(tmp_path):
    from workflow_scripts.aggregate import PROFILE_COLUMNS, TOP_COLUMNS

    figure = tmp_path / "kernel_breakdown.png"

    def section(profiles):
        return explain.blocks(ReportContext(table=pd.DataFrame(), profiles=profiles, profile_tops=tops,
                                            figure_paths={"kernel_breakdown": str(figure)}))

    profiles, tops = pd.DataFrame(columns=PROFILE_COLUMNS), pd.DataFrame(columns=TOP_COLUMNS)
    assert section(profiles)[-1] == ("p", "No cell was profiled (config `profiling`).")
    assert figure.stat().st_size > 0  # the figure the report always declares
    figure.unlink()
    skipped = pd.DataFrame([["eager", "fp32", 1, 32, "max_length", "cpu", "nsys", "skipped", "no nsys",
                             *[None] * 9]], columns=PROFILE_COLUMNS)
    assert [kind for kind, *_ in section(skipped)] == ["h2", "p", "p"]
    assert figure.stat().st_size > 0


RECORDED = Path(__file__).parent / "fixtures" / "nsys" / "2025.3.1"


@pytest.mark.parametrize("cell,kernels_per_iter,graph_launches,kernel_launches,wall_ms", [
    ("eager_fp32_bs1_seq128", 325, 0, 325, 9.0093),
    ("fused_bf16_bs1_seq128", 105, 1, 0, 0.6807),
])
def test_recorded_nsys_stats_of_in_process_engines(tmp_path, cell, kernels_per_iter, graph_launches, kernel_launches,
                                                   wall_ms):
    """Real `nsys stats` CSV from an H200 reduce to per-request numbers: eager launches every kernel, fused
    replays one CUDA graph."""
    for report in (RECORDED / cell).glob("stats_*.csv"):
        shutil.copy(report, tmp_path)
    prefix = tmp_path / "stats"
    assert nsys_stats.iteration_range(prefix) == (10, pytest.approx(wall_ms, abs=1e-4))
    summary = nsys_profile.summarize(prefix, {"iterations": 10, "wall_ms_per_iter": 99.0}, "2025.3.1", tmp_path,
                                     tmp_path / "profile.nsys-rep")
    assert summary["kernels_per_iter"] == kernels_per_iter
    assert summary["graph_launches_per_iter"] == graph_launches
    assert summary["kernel_launches_per_iter"] == kernel_launches
    assert 0 < summary["gpu_busy_ms_per_iter"] < wall_ms
    assert summary["category_ms_per_iter"]["GEMM"] > summary["category_ms_per_iter"]["attention"] > 0
    assert pd.read_csv(tmp_path / "kernels.csv").category.notna().all()


def test_recorded_nsys_stats_of_a_served_engine(tmp_path):
    """The Triton server's capture has no NVTX ranges: iterations come from the client, kernels from the server."""
    for report in (RECORDED / "triton-python-grpc_bf16_bs1_seq128").glob("stats_*.csv"):
        shutil.copy(report, tmp_path)
    prefix = tmp_path / "stats"
    assert nsys_stats.iteration_range(prefix) is None
    kernel_rows = nsys_stats.kernels(prefix)
    api = nsys_stats.api_calls(prefix)
    graph_launches = int(api[api.name.str.startswith("cudaGraphLaunch")].calls.sum())
    assert graph_launches == 9  # 10 requests sent; see the fixture's README
    assert kernel_rows.calls.sum() % graph_launches == 0  # the same kernels for every captured request
    summary = nsys_profile.summarize(prefix, {"iterations": 10, "wall_ms_per_iter": 3.18}, "2025.3.1", tmp_path,
                                     tmp_path / "profile.nsys-rep")
    assert summary["wall_ms_per_iter"] == 3.18 and summary["graph_launches_per_iter"] == 0.9
