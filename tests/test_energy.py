"""The report's energy section on constructed tables (the counter itself: test_host_state)."""
import pandas as pd

from workflow_scripts.report import energy
from workflow_scripts.report.context import ReportContext

BASE = {"precision": "bf16", "seq_len": 128, "padding": "max_length", "device": "cuda", "status": "ok",
        "gpu_name": "NVIDIA H200", "cpu": "Xeon", "throughput_samples_per_s": 1000.0}


def test_cells_are_listed_least_energy_first_and_the_rest_say_why():
    table = pd.DataFrame([
        {**BASE, "engine": "eager", "batch_size": 1, "energy_j_per_1k_inferences": 90.0, "average_power_w": 180.0,
         "energy_reason": None},
        {**BASE, "engine": "fused", "batch_size": 1, "energy_j_per_1k_inferences": 12.0, "average_power_w": 240.0,
         "energy_reason": None},
        {**BASE, "engine": "triton-python-grpc", "batch_size": 1, "energy_j_per_1k_inferences": None,
         "average_power_w": None, "energy_reason": "no host state recorded over the timed windows"},
    ])
    blocks = energy.blocks(ReportContext(table=table))
    shown = next(content for kind, content in blocks if kind == "table")
    assert shown.engine.tolist() == ["fused", "eager"]
    assert shown["J per 1k inferences"].tolist() == ["12.0", "90.0"]
    assert blocks[-1][1] == ("Cells without a reading: no host state recorded over the timed windows "
                             "(1 cell).")


def test_a_cpu_run_shows_no_table_but_the_reason():
    table = pd.DataFrame([{**BASE, "device": "cpu", "gpu_name": None, "engine": "eager", "batch_size": b,
                           "energy_j_per_1k_inferences": None, "average_power_w": None,
                           "energy_reason": "the cell runs on CPU"} for b in (1, 4)])
    blocks = energy.blocks(ReportContext(table=table))
    assert [kind for kind, *_ in blocks] == ["h2", "p", "p"]
    assert blocks[-1][1] == "Not measured: the cell runs on CPU (2 cells)."
    older = energy.blocks(ReportContext(table=table.drop(columns=energy.ENERGY_COLUMNS)))
    assert "hold no energy reading" in older[-1][1]


def test_a_cell_timed_by_an_external_load_client_says_so_instead_of_no_host_state():
    from workflow_scripts.aggregate import energy_columns

    # perf_analyzer times a served cell in its own windows: no host monitor ran (host None)
    assert energy_columns(None, 500, 1, "perf_analyzer")["energy_reason"] == (
        "timed by perf_analyzer in its own windows, which no energy reading follows")
    assert energy_columns(None, 500, 1)["energy_reason"] == "no host state recorded over the timed windows"
    on_cpu = {"energy": None, "energy_reason": "the cell runs on CPU"}
    assert energy_columns(on_cpu, 500, 1, "python")["energy_reason"] == "the cell runs on CPU"
