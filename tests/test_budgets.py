"""The report's latency-budget recommendation and Pareto frontier, on constructed tables."""
import pandas as pd

from workflow_scripts.report import budgets
from workflow_scripts.report.context import ReportContext

MAX_CV = {"cuda": 0.01, "cpu": 0.05}


def table(rows):
    base = {"precision": "bf16", "seq_len": 128, "padding": "max_length", "device": "cuda", "status": "ok",
            "reason": None, "gpu_name": "NVIDIA H200", "cpu": "Xeon", "repeat_p50_cv": 0.002}
    frame = pd.DataFrame([{**base, **row} for row in rows])
    frame["throughput_samples_per_s"] = frame.batch_size / frame.p50_ms * 1000
    frame["p99_ms"] = frame.p50_ms * 1.1
    return frame


CELLS = table([
    {"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 8.0},
    {"engine": "fused", "batch_size": 1, "p50_ms": 0.5},
    {"engine": "fused", "batch_size": 8, "p50_ms": 0.8},       # 10,000/s at p99 0.88 ms: wins 1 ms
    {"engine": "fused", "batch_size": 64, "p50_ms": 4.0},      # 16,000/s at 4.4 ms: wins 5 ms
    # faster still under 5 ms but mismatching, and under 20 ms but unstable: named, never chosen
    {"engine": "compile-max-autotune", "batch_size": 64, "p50_ms": 2.0, "status": "mismatch"},
    {"engine": "compile-default", "batch_size": 256, "p50_ms": 10.0, "repeat_p50_cv": 0.08},
    {"engine": "fused", "batch_size": 256, "p50_ms": 14.0},    # 18,286/s at 15.4 ms: wins 20 ms
    {"engine": "eager", "batch_size": 512, "p50_ms": 400.0, "status": "failed"},
])


def test_each_budget_gets_the_fastest_trusted_cell_that_fits_and_names_the_untrusted_faster_one():
    points = budgets.candidates(CELLS, pd.DataFrame(), "p99", MAX_CV)
    picked = budgets.recommend(points, [0.5, 1, 5, 20]).set_index("budget ms")
    assert picked.loc[0.5, "engine"] == "nothing fits (lowest latency 0.550 ms)"  # fused bs1's p99
    assert picked.loc[1, ["engine", "setting"]].tolist() == ["fused", "bs8"]
    assert picked.loc[1, "passed over"] == ""
    assert picked.loc[5, ["engine", "setting"]].tolist() == ["fused", "bs64"]
    assert "compile-max-autotune bf16 bs64" in picked.loc[5, "passed over"]
    assert "mismatch" in picked.loc[5, "passed over"]
    assert picked.loc[20, ["engine", "setting"]].tolist() == ["fused", "bs256"]
    assert "compile-default bf16 bs256" in picked.loc[20, "passed over"]
    assert "unstable (CV 8.0%)" in picked.loc[20, "passed over"]


def test_budgets_held_against_p50_when_configured():
    """fused bs64 has p99 4.4 ms, p50 4.0 ms: it fits a 4.2 ms budget only by its p50."""
    by_p99 = budgets.recommend(budgets.candidates(CELLS, pd.DataFrame(), "p99", MAX_CV), [4.2])
    by_p50 = budgets.recommend(budgets.candidates(CELLS, pd.DataFrame(), "p50", MAX_CV), [4.2])
    assert by_p99.setting.iloc[0] == "bs8"
    assert by_p50.setting.iloc[0] == "bs64"


def test_served_load_levels_compete_by_concurrency():
    serving = pd.DataFrame([{"engine": "triton-python-grpc", "precision": "bf16", "seq_len": 128,
                             "padding": "max_length", "device": "cuda", "status": "ok", "concurrency": 16,
                             "p50_ms": 0.7, "p99_ms": 0.9, "throughput_samples_per_s": 20_000.0,
                             "repeat_p50_cv": None}])
    picked = budgets.recommend(budgets.candidates(CELLS, serving, "p99", MAX_CV), [1])
    assert picked[["engine", "setting"]].iloc[0].tolist() == ["triton-python-grpc", "concurrency 16"]


def test_pareto_frontier_keeps_only_undominated_points():
    points = pd.DataFrame({"latency_ms": [1.0, 2.0, 3.0, 4.0, 2.5], "samples_per_s": [100, 300, 250, 400, 300]})
    assert budgets.pareto_frontier(points).index.tolist() == [0, 1, 3]


def test_section_draws_the_figure_and_lists_every_budget(tmp_path):
    ctx = ReportContext(table=CELLS, targets={"max_repeat_cv": MAX_CV},
                        budgets={"latency_ms": [1, 5], "percentile": "p99"},
                        figure_paths={"pareto": str(tmp_path / "pareto.png")})
    blocks = budgets.blocks(ctx)
    shown = next(content for kind, content, *_ in blocks if kind == "table")
    assert shown["engine"].tolist() == ["fused", "fused"]
    assert (tmp_path / "pareto.png").stat().st_size > 0


def test_a_recommendation_names_its_padding_and_sequence_length():
    """Both paddings in the sweep: the chosen cell and the ones passed over are named with both (two cells
    that differ only in padding once read as one)."""
    cells = table([{"engine": "fused", "batch_size": 8, "p50_ms": 0.8},
                   {"engine": "fused", "batch_size": 8, "p50_ms": 0.3, "padding": "dynamic"},
                   {"engine": "fused", "batch_size": 16, "p50_ms": 0.4, "padding": "dynamic", "status": "mismatch"}])
    picked = budgets.recommend(budgets.candidates(cells, pd.DataFrame(), "p99", MAX_CV), [1]).iloc[0]
    assert picked[["engine", "setting", "seq_len", "padding"]].tolist() == ["fused", "bs8", 128, "dynamic"]
    assert picked["passed over"].startswith("fused bf16 bs16 seq128 dynamic (")


def test_a_budget_nothing_fits_is_told_apart_from_one_only_untrusted_cells_fit():
    """The CPU trial's four budgets all read "nothing trusted fits", though no cell came within 100 ms at all."""
    cells = table([{"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 10.0, "device": "cpu",
                    "repeat_p50_cv": 0.41}])  # p99 11 ms, unstable
    picked = budgets.recommend(budgets.candidates(cells, pd.DataFrame(), "p99", MAX_CV), [5, 20]).set_index(
        "budget ms")
    assert picked.loc[5, ["engine", "passed over"]].tolist() == ["nothing fits (lowest latency 11.000 ms)", ""]
    assert picked.loc[20, "engine"] == "nothing trusted fits"
    assert picked.loc[20, "passed over"] == "eager fp32 bs1 seq128 max_length (100/s, unstable (CV 41.0%))"
