"""The report's tables built from aggregated cells (the whole report is covered by test_pipeline)."""
import pandas as pd
import pytest

from workflow_scripts import roofline
from workflow_scripts.report import cells as cells_section, environment, figures, headline, overview, why
from workflow_scripts.report import summary as summary_section
from workflow_scripts.report.context import ReportContext, with_speedup


def test_environment_table_counts_cells_per_machine_outside_slurm():
    """Runs outside Slurm have no job id (NaN): each machine's cells are still counted."""
    machine = {"hostname": "node1", "gpu_name": "NVIDIA H200", "cpu": "Xeon", "torch": "2.11", "git_commit": "abc",
               "slurm_job_id": float("nan")}
    table = pd.DataFrame([machine] * 3 + [{**machine, "hostname": "node2", "slurm_job_id": 42.0}])
    env = environment.environment_table(table)
    assert env.set_index("hostname")["cells"].to_dict() == {"node1": 3, "node2": 1}


def test_environment_table_names_each_card_of_one_host():
    """A sweep split over the cards of one host: the same model name, told apart by the card's UUID."""
    machine = {"hostname": "node1", "gpu_name": "NVIDIA H200", "cpu": "Xeon", "torch": "2.11", "git_commit": "abc",
               "slurm_job_id": float("nan")}
    table = pd.DataFrame([{**machine, "gpu_uuid": "GPU-a"}] * 2 + [{**machine, "gpu_uuid": "GPU-b"}])
    env = environment.environment_table(table)
    assert env.set_index("gpu_uuid")["cells"].to_dict() == {"GPU-a": 2, "GPU-b": 1}


TARGETS = {"min_speedup": 10, "min_peak_share": 0.65, "max_serving_overhead_ms": 0.5,
           "min_serving_throughput_share": 0.8, "max_repeat_cv": {"cuda": 0.01, "cpu": 0.05}}
BASELINE = {"engine": "eager", "precision": "fp32"}
ROLES = {"triton-python-grpc": {"served": True, "twin": "compile-reduce-overhead"}}  # as engines.roles() gives
MODEL = {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072, "num_attention_heads": 12,
         "vocab_size": 30522, "num_labels": 2, "num_parameters": 109_483_778}


def cells(rows, gpu="NVIDIA H200"):
    base = {"precision": "bf16", "seq_len": 128, "padding": "max_length", "device": "cuda", "status": "ok",
            "gpu_name": gpu, "cpu": "Xeon", "repeat_p50_cv": 0.002, "tokens_per_batch": None}
    frame = pd.DataFrame([{**base, **ROLES.get(row["engine"], {"served": False, "twin": None}), **row}
                          for row in rows])
    frame["throughput_samples_per_s"] = frame.batch_size / frame.p50_ms * 1000
    frame["mean_ms"] = frame.p50_ms
    # a tight CI (±2%) unless the row gives its own
    for column, factor in (("p50_ci_low_ms", 0.98), ("p50_ci_high_ms", 1.02)):
        given = frame[column] if column in frame else pd.Series(float("nan"), index=frame.index)
        frame[column] = given.fillna(frame.p50_ms * factor)
    return with_speedup(frame, BASELINE, TARGETS["max_repeat_cv"])


def summary(table, serving=None, peaks=None):
    serving = serving if serving is not None else pd.DataFrame(columns=["engine", "status"])
    ctx = ReportContext(table=table, serving=serving, peaks=peaks, model_info=MODEL, baseline=BASELINE,
                        targets=TARGETS)
    return summary_section.summary_table(ctx).set_index("question")


def test_summary_says_by_how_much_each_target_is_met_or_missed():
    table = cells([
        {"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 9.0},
        {"engine": "fused", "batch_size": 1, "p50_ms": 0.5},
        {"engine": "compile-reduce-overhead", "batch_size": 1, "p50_ms": 0.75},
        {"engine": "triton-python-grpc", "batch_size": 1, "p50_ms": 2.75, "repeat_p50_cv": 0.03},
        {"engine": "eager", "precision": "fp32", "batch_size": 64, "p50_ms": 36.0},
        {"engine": "fused", "batch_size": 64, "p50_ms": 3.0},
        {"engine": "compile-reduce-overhead", "batch_size": 64, "p50_ms": 3.2},
    ])
    serving = pd.DataFrame([{"engine": "triton-python-grpc", **ROLES["triton-python-grpc"], "precision": "bf16", "seq_len": 128, "status": "ok",
                             "concurrency": c, "throughput_samples_per_s": rate} for c, rate in ((1, 400), (64, 4000))])
    peaks = {"status": "ok", "matmul_tflops": {"bf16": 800.0, "fp16": 700.0, "fp32": 50.0, "tf32": 400.0},
             "copy_gb_per_s": 4000.0}
    rows = summary(table, serving, peaks)
    assert rows.loc["fastest at batch 1", "verdict"] == "met (1.80× the target)"  # 9.0 / 0.5 = 18× of 10×
    share = 64 * roofline.model_flops_per_sequence(MODEL, 128) / 3.0e-3 / 800e12  # ~60%: fused bs64 in 3 ms
    assert rows.loc["fastest at batch 64: share of the measured matmul peak", "verdict"] == (
        f"{'met' if share >= 0.65 else 'missed'} ({share / 0.65:.2f}× the target)")
    assert rows.loc["serving overhead at batch 1", "verdict"] == "missed (4.00× the target)"  # 2.75 - 0.75 = 2 ms
    throughput = rows.loc["served throughput at the highest concurrency (64 clients)"]
    assert "(20%)" in throughput.measured and throughput.verdict == "missed (0.25× the target)"
    assert rows.loc["cells whose repeat medians agree", "measured"].startswith("6 of 7 (widest: triton-python-grpc")


def test_summary_has_a_serving_row_per_server_against_in_process():
    """Triton and Dynamo in one run: each gets its overhead and throughput rows, against its own twin."""
    roles = {**ROLES, "dynamo-grpc": {"served": True, "twin": "eager"}}
    table = cells([
        {"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 4.0},
        {"engine": "eager", "batch_size": 1, "p50_ms": 4.0},
        {"engine": "compile-reduce-overhead", "batch_size": 1, "p50_ms": 0.75},
        {"engine": "triton-python-grpc", "batch_size": 1, "p50_ms": 2.75},
        {"engine": "dynamo-grpc", "batch_size": 1, "p50_ms": 5.0, **roles["dynamo-grpc"]},
        {"engine": "eager", "batch_size": 4, "p50_ms": 8.0},
        {"engine": "compile-reduce-overhead", "batch_size": 4, "p50_ms": 2.0},
    ])
    serving = pd.DataFrame([{"engine": engine, **roles[engine], "precision": "bf16", "seq_len": 128, "status": "ok",
                             "concurrency": 4, "throughput_samples_per_s": rate}
                            for engine, rate in (("triton-python-grpc", 1000), ("dynamo-grpc", 250))])
    rows = summary(table, serving).reset_index()
    overhead = rows[rows.question == "serving overhead at batch 1"]
    assert [m.split(" ")[0] for m in overhead.measured] == ["dynamo-grpc", "triton-python-grpc"]
    assert list(overhead.verdict) == ["missed (2.00× the target)", "missed (4.00× the target)"]  # 5-4 = 1 ms, 2.75-0.75 = 2 ms of 0.5
    throughput = rows[rows.question == "served throughput at the highest concurrency (4 clients)"]
    assert [m.split(" ")[0] for m in throughput.measured] == ["dynamo-grpc", "triton-python-grpc"]
    assert "vs eager bf16 bs4 seq128 max_length 500 samples/s (50%)" in throughput.measured.iloc[0]
    assert "vs compile-reduce-overhead bf16 bs4 seq128 max_length 2,000 samples/s (50%)" in throughput.measured.iloc[1]


def test_summary_without_peaks_serving_or_other_machines():
    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 9.0},
                   {"engine": "fused", "batch_size": 1, "p50_ms": 1.0}])
    other = cells([{"engine": "fused", "batch_size": 1, "p50_ms": 0.1}], gpu="NVIDIA H100 80GB HBM3")
    rows = summary(pd.concat([table, other], ignore_index=True))
    assert rows.loc["fastest at batch 1", "measured"] == (  # not the H100's
        "fused bf16 bs1 seq128 max_length: 1.000 ms, 9.00× eager fp32 at the same batch, seq and padding")
    assert rows.loc["fastest at batch 1", "verdict"] == "missed (0.90× the target)"
    assert rows.loc["fastest at batch 1: share of the measured matmul peak", "verdict"] == "not measured"
    assert rows.loc["serving overhead at batch 1", "verdict"] == "not measured"
    assert rows.loc["served throughput at the highest concurrency", "verdict"] == "not measured"


def test_overlapping_cis_name_no_winner():
    """The CPU run's batch 1: compile-default's p50 is lowest, but its CI overlaps eager's and torchscript's."""
    table = cells([
        {"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 1090.0, "p50_ci_low_ms": 998.0,
         "p50_ci_high_ms": 1187.0},
        {"engine": "compile-default", "precision": "fp32", "batch_size": 1, "p50_ms": 1050.6,
         "p50_ci_low_ms": 848.0, "p50_ci_high_ms": 1689.0},
        {"engine": "torchscript", "precision": "fp32", "batch_size": 1, "p50_ms": 1100.0, "p50_ci_low_ms": 545.0,
         "p50_ci_high_ms": 1300.0},
    ])
    fastest = summary(table).loc["fastest at batch 1"]
    assert fastest.measured.startswith("no difference resolved: compile-default fp32 bs1 seq128 max_length")
    assert "eager fp32" in fastest.measured and "torchscript fp32" in fastest.measured
    assert fastest.verdict == "no difference resolved from eager fp32"
    ctx = ReportContext(table=table, baseline=BASELINE, targets=TARGETS)
    assert summary_section.main_finding(ctx).startswith("Main finding: no cell is resolved faster than eager fp32")


def test_resolved_winner_and_main_finding_at_another_batch():
    """Apart CIs name the winner; the main finding is the largest resolved speedup, here at batch 8."""
    table = cells([
        {"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 10.0},
        {"engine": "fused", "precision": "fp32", "batch_size": 1, "p50_ms": 8.0},
        {"engine": "eager", "precision": "fp32", "batch_size": 8, "p50_ms": 60.0},
        {"engine": "fused", "precision": "fp32", "batch_size": 8, "p50_ms": 20.0},
        # larger, but inside the noise: not the main finding
        {"engine": "torchscript", "precision": "fp32", "batch_size": 8, "p50_ms": 15.0, "p50_ci_low_ms": 5.0,
         "p50_ci_high_ms": 61.0},
    ])
    rows = summary(table)
    assert rows.loc["fastest at batch 1", "measured"].startswith("fused fp32 bs1 seq128 max_length: 8.000 ms, 1.25×")
    assert rows.loc["fastest at batch 1", "verdict"] == "missed (0.12× the target)"
    ctx = ReportContext(table=table, baseline=BASELINE, targets=TARGETS)
    assert summary_section.main_finding(ctx).startswith(
        "Main finding: fused fp32 bs8 seq128 max_length is 3.00× eager fp32")


def test_a_cpu_run_marks_gpu_targets_not_applicable():
    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 9.0, "device": "cpu"},
                   {"engine": "fused", "precision": "fp32", "batch_size": 1, "p50_ms": 1.0, "device": "cpu"}],
                  gpu=None)
    rows = summary(table)
    assert rows.loc["fastest at batch 1", "verdict"] == "n/a on CPU"
    assert rows.loc["fastest at batch 1", "measured"].startswith("fused fp32 bs1 seq128 max_length: 1.000 ms, 9.00×")
    assert rows.loc["fastest at batch 1: share of the measured matmul peak", "verdict"] == "n/a on CPU"
    assert rows.loc["serving overhead at batch 1", "verdict"] == "n/a on CPU"
    assert rows.loc["served throughput at the highest concurrency", "verdict"] == "n/a on CPU"
    assert rows.loc["cells whose repeat medians agree", "verdict"] == "met"  # applies on CPU too
    # served on CPU: every GPU-only target reads n/a, the measured value beside it (the trial said "missed (0.49×)"
    # for throughput beside "n/a on CPU" for the overhead)
    served = cells([{"device": "cpu", "precision": "fp32", **row} for row in [
        {"engine": "compile-reduce-overhead", "batch_size": 1, "p50_ms": 100.0},
        {"engine": "triton-python-grpc", "batch_size": 1, "p50_ms": 103.0},
        {"engine": "compile-reduce-overhead", "batch_size": 4, "p50_ms": 200.0}]], gpu=None)
    load = pd.DataFrame([{"engine": "triton-python-grpc", **ROLES["triton-python-grpc"], "precision": "fp32",
                          "seq_len": 128, "status": "ok", "concurrency": 4, "throughput_samples_per_s": 9.8}])
    rows = summary(served, load)
    assert rows.loc["serving overhead at batch 1", "verdict"] == "n/a on CPU"
    assert rows.loc["serving overhead at batch 1", "measured"].endswith("in-process 100.000 ms (+3.000 ms)")
    throughput = rows.loc["served throughput at the highest concurrency (4 clients)"]
    assert throughput.verdict == "n/a on CPU" and throughput.measured.endswith("20 samples/s (49%)")


def test_skipped_cells_are_announced_with_their_reason_and_listed_last():
    """fp16 on CPU and the like: the report's first lines say which cells could not run and why."""
    skipped = {"engine": "eager", "precision": "fp16", "batch_size": 1, "p50_ms": float("nan"), "status": "skipped",
               "reason": "fp16 matmuls are not supported on CPU", "device": "cpu"}
    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 4.0, "device": "cpu"},
                   skipped, {**skipped, "engine": "torchscript"}])
    table = table.assign(reason=table.reason.where(table.status == "skipped"), p50_ci_low_ms=table.p50_ms,
                         p50_ci_high_ms=table.p50_ms)
    dataset = {"origin": "hub", "name": "glue", "config": "sst2", "split": "validation", "rows": 872}
    notes = overview.warnings_for(table, dataset, {}, TARGETS["max_repeat_cv"])
    assert ("SKIPPED: 2 cells could not run here: fp16 matmuls are not supported on CPU "
            "(eager/fp16/bs1/seq128/max_length, torchscript/fp16/bs1/seq128/max_length)") in notes
    assert headline.headline(table).status.tolist() == ["ok", "skipped", "skipped"]


def test_batches_larger_than_the_dataset_are_announced():
    """The bundled 200-row sample with batch 256: the batch repeats rows, and the report says so first."""
    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": b, "p50_ms": 4.0, "device": "cuda",
                    "reason": None} for b in (1, 256)])
    dataset = {"origin": "hub", "name": "glue", "config": "sst2", "split": "validation", "rows": 200}
    notes = overview.warnings_for(table, dataset, {}, TARGETS["max_repeat_cv"])
    assert any(n.startswith("BATCHES REPEAT ROWS: the dataset has 200 rows, fewer than batch size(s) 256:")
               for n in notes)
    assert not any("REPEAT ROWS" in n for n in overview.warnings_for(table, {**dataset, "rows": 872}, {},
                                                                     TARGETS["max_repeat_cv"]))


def test_both_paddings_stay_apart_in_every_figure_table_warning_and_sentence(tmp_path):
    """Both paddings in one sweep: the speedup figure once drew one bar of 179× for torchscript at batch 1,
    the mean of its two cells (330.8× and 27.1×), and the Summary, the unstable-cell warning and the "why"
    sentences named cells without their padding, so two cells read as one."""
    table = cells([
        {"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 297.72, "tokens_per_batch": 128.0},
        {"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 27.1, "padding": "dynamic",
         "tokens_per_batch": 23.5},
        {"engine": "torchscript", "precision": "fp32", "batch_size": 1, "p50_ms": 0.9, "tokens_per_batch": 128.0},
        {"engine": "torchscript", "precision": "fp32", "batch_size": 1, "p50_ms": 1.0, "padding": "dynamic",
         "tokens_per_batch": 23.5, "repeat_p50_cv": 0.2},
    ])
    bars = figures.speedup_bars(table)
    assert bars.loc[("torchscript fp32 seq128 max_length", 1), "speedup"] == pytest.approx(330.8)
    assert bars.loc[("torchscript fp32 seq128 dynamic", 1), "statistic"] == "unresolved"  # its repeat CV is 20%
    figures.plot_speedup(table, BASELINE, str(tmp_path / "speedup.png"))
    with pytest.raises(ValueError):  # two cells in one bar are refused, never averaged
        figures.speedup_bars(pd.concat([table, table.iloc[[2]]], ignore_index=True))

    assert summary(table).loc["fastest at batch 1", "measured"].startswith(
        "torchscript fp32 bs1 seq128 max_length: 0.900 ms, 330.80× eager fp32")
    dataset = {"origin": "hub", "name": "glue", "config": "sst2", "split": "validation", "rows": 872}
    (unstable,) = [n for n in overview.warnings_for(table.assign(reason=None), dataset, {}, TARGETS["max_repeat_cv"])
                   if n.startswith("UNSTABLE")]
    assert unstable.endswith("in: torchscript fp32 bs1 seq128 dynamic (20.0%)")
    # dynamic padding in the sweep: each cell's tokens per batch beside it
    assert headline.headline(table.assign(p50_ci_low_ms=table.p50_ms, p50_ci_high_ms=table.p50_ms))[
        "tokens/batch"].tolist() == ["128.0", "23.5", "23.5", "128.0"]
    assert cells_section.full_table(table)["tokens/batch"].tolist() == ["128.0", "23.5", "128.0", "23.5"]
    assert "tokens/batch" not in cells_section.full_table(table[table.padding == "max_length"])

    columns = ["engine", "precision", "batch_size", "seq_len", "padding", "tool", "kernel_launches_per_iter",
               "graph_launches_per_iter", "kernels_per_iter", "gpu_busy_ms_per_iter", "gpu_busy_fraction",
               "cpu_ops_per_iter", "wall_ms_per_iter", "status"]
    profiles = pd.DataFrame([[engine, "fp32", 1, 128, padding, "nsys", launches, 0, launches, busy, 0.5, None,
                              2 * busy, "ok"]
                             for engine, launches in (("eager", 400), ("torchscript", 300))
                             for padding, busy in (("max_length", 1.0), ("dynamic", 0.3))],
                            columns=columns)
    lines = why.why_paragraphs(why.chosen_profiles(profiles), BASELINE)
    assert sorted(line.split(", torchscript")[0] for line in lines) == [
        "At batch 1 (fp32, seq 128, dynamic padding)", "At batch 1 (fp32, seq 128, max_length padding)"]
    # a profile far from its timed cell (2 ms per iteration profiled, 0.5 ms timed): its sentence says so
    timed = pd.DataFrame([{"engine": engine, "precision": "fp32", "batch_size": 1, "seq_len": 128,
                           "padding": padding, "p50_ms": p50}
                          for engine, padding, p50 in (("eager", "max_length", 2.0), ("torchscript", "max_length", 0.5),
                                                       ("eager", "dynamic", 0.6), ("torchscript", "dynamic", 0.6))])
    lines = {("dynamic" if "dynamic padding" in line else "max_length"): line
             for line in why.why_paragraphs(why.chosen_profiles(profiles), BASELINE, timed)}
    assert lines["max_length"].endswith("Read these times with care: the profile of torchscript fp32 bs1 seq128 "
                                        "max_length differs from its timed cell by more than 1.5× (PROFILE ≠ "
                                        "TIMING); its counts still hold.")
    assert "with care" not in lines["dynamic"]


def test_the_fastest_speedup_comes_from_its_pair_and_an_unstable_one_says_so():
    from workflow_scripts import pair_speedups

    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 9.0},
                   {"engine": "fused", "batch_size": 1, "p50_ms": 0.5}])  # cells alone: 18×
    pair = {"engine": "fused", "precision": "bf16", "batch_size": 1, "seq_len": 128, "padding": "max_length",
            "status": "ok", "baseline_engine": "eager", "baseline_precision": "fp32", "gpu_name": "NVIDIA H200",
            "speedup": 9.5, "speedup_ci_low": 9.2, "speedup_ci_high": 10.3, "unstable": None}
    steady = summary(pair_speedups.with_pair_speedups(table, pd.DataFrame([pair]), BASELINE))
    assert steady.loc["fastest at batch 1", "measured"] == (
        "fused bf16 bs1 seq128 max_length: 0.500 ms, 9.50× eager fp32 side by side [9.20–10.30] (cell p50 ratio 18.00×)")
    assert steady.loc["fastest at batch 1", "verdict"] == (
        "not resolved: the 95% interval 9.20–10.30× holds the target (missed by the median alone, 0.95× the target)")
    unstable = {**pair, "speedup_ci_low": 12.0, "speedup_ci_high": 14.0, "speedup": 13.0,
                "unstable": "the ratio switched between two levels, 12x and 14x"}
    rows = summary(pair_speedups.with_pair_speedups(table, pd.DataFrame([unstable]), BASELINE))
    assert rows.loc["fastest at batch 1", "verdict"] == (
        "met (1.30× the target); unstable comparison: the ratio switched between two levels, 12x and 14x")
    table = table.assign(p50_ci_low_ms=table.p50_ms, p50_ci_high_ms=table.p50_ms)
    shown = headline.headline(pair_speedups.with_pair_speedups(table, pd.DataFrame([unstable]), BASELINE))
    assert shown["speedup side by side (95% CI)"].tolist() == ["13.00× [12.00–14.00], unstable", "— (no pair)"]
    # a pair whose interval holds 1 resolves nothing, whatever the cells' CIs say
    noise = {**pair, "speedup": 1.05, "speedup_ci_low": 0.9, "speedup_ci_high": 1.2}
    rows = summary(pair_speedups.with_pair_speedups(cells([{"engine": "eager", "precision": "fp32", "batch_size": 1,
                                                            "p50_ms": 9.0},
                                                           {"engine": "fused", "batch_size": 1, "p50_ms": 0.5}]),
                                                    pd.DataFrame([noise]), BASELINE))
    assert rows.loc["fastest at batch 1", "verdict"] == "no difference resolved from eager fp32"


def test_a_profile_far_from_its_timing_is_flagged():
    """The CPU run's batch 1: compile-default profiled at 330 ms per iteration against a timed p50 of 1,050 ms."""
    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 1000.0, "device": "cpu"},
                   {"engine": "compile-default", "precision": "fp32", "batch_size": 1, "p50_ms": 1050.0,
                    "device": "cpu"}], gpu=None)
    cell = {"precision": "fp32", "batch_size": 1, "seq_len": 128, "padding": "max_length", "tool": "torch"}
    chosen = pd.DataFrame([{**cell, "engine": "eager", "wall_ms_per_iter": 1200.0},  # 1.2×: profiler overhead
                           {**cell, "engine": "compile-default", "wall_ms_per_iter": 330.0}])
    gaps = why.profile_gaps(chosen, table)
    assert gaps == ["PROFILE ≠ TIMING: compile-default fp32 bs1 seq128 max_length: 330.000 ms per iteration under "
                    "the torch profiler vs a timed p50 of 1050.000 ms (0.31×); read its breakdown with care"]
    assert why.profile_gaps(chosen, table, ratio=4) == []


def test_throughput_comes_from_the_p50_like_latency():
    """A slow outlier lifts the mean, not the p50: every table's samples/s (cells.csv's column, which the
    All cells, budget and energy tables and the load sweep's share all read) follow the p50 the report ranks
    by; a load level keeps the requests/s it measured."""
    from workflow_scripts import aggregate

    cell = {"engine": "eager", "precision": "fp32", "batch_size": 8, "seq_len": 128, "padding": "max_length",
            "device": "cuda"}
    result = {"cell": cell, "status": "ok", "reason": None, "throughput_samples_per_s": 20.0,  # batch / mean
              "latency": {"wall_ms": {"p50": 100.0, "mean": 400.0}},
              "environment": {"gpu_name": "NVIDIA H200", "cpu": "Xeon", "hostname": "node", "torch": "2.11",
                              "git_commit": "abc", "time_utc": "2026-11-30T04:20:00", "slurm_job_id": None},
              "model": {"model_id": "bert-base-uncased", "weights": "random"}}
    roles = {"eager": {"served": False, "twin": None}}
    row = aggregate.cell_row(result, "x.json", roles)
    assert row["throughput_samples_per_s"] == 80.0
    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": 8, "p50_ms": 100.0,
                    "throughput_samples_per_s": row["throughput_samples_per_s"]}])
    assert cells_section.full_table(table)["samples/s"].tolist() == ["80.0"]
    level = {**result, "cell": {**cell, "batch_size": 1, "concurrency": 64}, "throughput_samples_per_s": 4945.0}
    assert aggregate.latency_row(level, "y.json", roles)["throughput_samples_per_s"] == 4945.0


def test_html_shows_code_not_backticks_and_opens_with_contents(tmp_path):
    from workflow_scripts.report import render

    blocks = [("h1", "inferbench report"), ("h2", "Summary"), ("p", "each against `report.targets`"),
              ("table", pd.DataFrame({"setting": ["`x`"]})), ("h2", "All cells")]
    render.render(blocks, tmp_path, str(tmp_path / "r.md"), str(tmp_path / "r.html"))
    page = (tmp_path / "r.html").read_text()
    assert "`" not in page and "<code>report.targets</code>" in page and "<td><code>x</code></td>" in page
    assert page.index("<nav>") < page.index("<h2 id='summary'>")
    assert "<a href='#summary'>Summary</a>" in page and "<a href='#all-cells'>All cells</a>" in page
    assert "`report.targets`" in (tmp_path / "r.md").read_text()  # Markdown keeps its code spans


def test_cells_from_another_run_are_marked_and_empty_gpu_columns_dropped():
    """A batch size added a day later: its cell says when it ran and that it came from another run."""
    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": b, "p50_ms": 4.0, "device": "cpu",
                    "gpu_p50_ms": None, "time_utc": when} for b, when in
                   ((1, "2026-11-29T22:00:04+00:00"), (8, "2026-11-29T22:07:10+00:00"),
                    (4, "2026-11-30T09:30:00+00:00"))], gpu=None)
    shown = cells_section.full_table(table)
    assert shown["measured (UTC)"].tolist() == ["2026-11-29 22:00", "2026-11-29 22:07",
                                                "2026-11-30 09:30, another run"]
    assert "gpu_p50_ms" not in shown and "p50_ms" in shown


def test_operator_legend_names_are_readable():
    assert why.legend_name("## Call CompiledFxGraph fricwu2abcdefghijklmnop ##") == "compiled graph (torch.compile)"
    assert why.legend_name("aten::addmm") == "aten::addmm"
    assert len(why.legend_name("aten::" + "x" * 100)) == 40


def test_numbers_read_one_way_in_every_table():
    """Operator counts as whole numbers, times in ms to 3 places, shares as %, tiny differences in e-notation."""
    from workflow_scripts.report import correctness

    chosen = pd.DataFrame([{"engine": "eager", "precision": "fp32", "batch_size": 1, "seq_len": 128,
                            "padding": "max_length", "tool": "torch", "wall_ms_per_iter": 3555.3947,
                            "cpu_ops_per_iter": 704.0, "gpu_busy_ms_per_iter": None}])
    shown = why.overhead_table(chosen)
    assert shown[["wall ms/iter", "ATen ops/iter"]].values.tolist() == [["3555.395", "704"]]
    tops = pd.DataFrame([{**chosen.iloc[0][["engine", "precision", "batch_size", "seq_len", "padding", "tool"]],
                          "kind": "op", "rank": rank, "name": name, "category": None, "ms_per_iter": ms,
                          "calls_per_iter": calls, "mean_us": None, "time_fraction": None}
                         for rank, name, ms, calls in ((1, "aten::addmm", 0.29912, 14.0), (2, "aten::copy_", 0.0629, 0.5))])
    top = why.top_table(chosen, tops, "op")
    assert top[["ms/iter", "calls/iter"]].values.tolist() == [["0.299", "14"], ["0.063", "0.5"]]
    table = pd.DataFrame([{"engine": "eager", "max_abs_diff": 3.725290e-07, "agreement": 1.0, "accuracy": 0.5}])
    assert correctness.correctness_table(table).values.tolist() == [["eager", "3.73e-07", "100.0%", "50.0%"]]
    # the serving tables: times to the µs, rates to 0.1/s, shares as %, not raw floats (56.0, 1.0)
    from workflow_scripts.report import serving

    table = cells([{"engine": "compile-reduce-overhead", "batch_size": 1, "p50_ms": 0.75, "iterations": 100},
                   {"engine": "triton-python-grpc", "batch_size": 1, "p50_ms": 2.0, "iterations": 100,
                    "server_requests": 100, "server_queue_ms": 0.5, "server_compute_input_ms": 0.0,
                    "server_compute_infer_ms": 1.0, "server_compute_output_ms": 0.0}])
    overhead = serving.shown_numbers(serving.serving_overhead(table)).iloc[0]
    assert (overhead["served p50 ms"], overhead["overhead ms"], overhead["queue ms"], overhead["client+network ms"]
            ) == ("2.000", "1.250", "0.500", "0.500")
    level = pd.DataFrame([{"engine": "triton-python-grpc", **ROLES["triton-python-grpc"], "precision": "bf16",
                           "seq_len": 128, "status": "ok", "concurrency": 1, "p50_ms": 56.0, "p99_ms": 60.0,
                           "mean_ms": 57.0, "throughput_samples_per_s": 1000.0, "iterations": 10,
                           "server_requests": 12, "server_mean_batch_per_execution": 1.0}])
    shown = serving.shown_numbers(serving.concurrency_table(level, table)).iloc[0]
    assert (shown["p50 ms"], shown["requests/s"], shown["in-process samples/s at that batch"],
            shown["share of in-process"], shown["mean server batch"]) == ("56.000", "1,000.0", "1,333.3", "75.0%", "1.0")
    assert "reason" not in serving.concurrency_table(level, table)  # every level ok: no reason column
    ok_level = level.iloc[0].to_dict()
    failed = pd.DataFrame([ok_level, {**ok_level, "concurrency": 4, "status": "failed", "p50_ms": float("nan"),
                                      "p99_ms": float("nan"), "throughput_samples_per_s": float("nan"),
                                      "reason": "no request completed within the 2 s window"}])
    shown = serving.concurrency_table(failed, table)
    assert shown.reason.tolist() == ["—", "no request completed within the 2 s window"]


def test_measurement_context_states_this_runs_rule_and_host_state_from_the_results():
    """The report's "How these numbers were measured" comes from the cells' recorded settings and host state:
    the power cap at batch 256 is context, a thermal slowdown is named as flagged; CPU steal, load, clocks,
    pinning and versions are the recorded ranges."""
    from workflow_scripts.report import measurement

    rule = {"measurement_warmup_seconds": 1.0, "measurement_stable_windows": 3, "measurement_stable_tolerance": 0.05,
            "measurement_warmup_max_seconds": 20.0, "measurement_window_seconds": 0.2,
            "measurement_min_window_iters": 5, "measurement_windows": 10, "measurement_repeats": 3}
    host = {"gpu_driver": "580.159.04", "cpu_count": 16, "cpu_affinity": "0-15", "torch_threads": 16,
            "transformers": "5.17", "torch": "2.11", "iterations": 300, "warmup_s": 1.5, "warmup_steady": True,
            "pinned_core": 15, "time_utc": "2026-11-29T10:00:00+00:00", "cpu_steal_share": 0.001,
            "load_average_start": 0.5, "load_average_end": 1.25, "sm_clock_min_mhz": 1980, "sm_clock_max_mhz": 1980,
            "clock_event_reasons": "", **rule}
    table = cells([
        {"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 4.0, **host},
        {"engine": "fused", "batch_size": 1, "p50_ms": 0.5, **host, "time_utc": "2026-11-29T10:20:00+00:00"},
        {"engine": "eager", "precision": "fp32", "batch_size": 256, "p50_ms": 400.0, **host, "sm_clock_min_mhz": 1380,
         "clock_event_reasons": "sw_power_cap", "cpu_steal_share": 0.031},
        {"engine": "fused", "batch_size": 256, "p50_ms": 40.0, **host, "clock_event_reasons": "sw_power_cap; "
         "hw_thermal_slowdown", "iterations": 60, "warmup_steady": False, "warmup_s": 20.0},
    ])
    facts = measurement.facts(table).set_index("what")["this run"]
    assert facts["timing rule"].startswith("warm-up: every input batch once, then windows until at least 1 s")
    assert "3 repeats × 10 windows, each at least 0.2 s and 5 calls" in facts["timing rule"]
    assert facts["timed calls per cell"] == "60–300 (with fewer than 100, p99 is close to the slowest call)"
    assert facts["warm-up"] == ("settled in 3 of 4 cells, in 1.5 s; 1 reached the 20 s cap, in 20.0 s (the cap is "
                                "checked after the every-batch-once pass and after each window, so a warm-up runs "
                                "past it; named under NOT STEADY above)")
    assert facts["when (UTC)"] == "2026-11-29 10:00 – 2026-11-29 10:20"
    assert facts["GPU and driver"] == "NVIDIA H200, driver 580.159.04"
    assert facts["SM clock over the timed windows"] == "1380–1980 MHz"
    assert facts["clock-event reasons"] == (
        "sw_power_cap in 2 cells (power cap at full load, the card working as designed); hw_thermal_slowdown in "
        "1 cell (a thermal or hardware slowdown: the cell is flagged THROTTLED)")
    assert facts["cores and threads"] == ("CPU cores each job was allowed: core(s) 0-15, torch threads 16; timing thread pinned to core 15 "
                                          "in 4 cells")
    assert facts["CPU steal time (share of CPU time, per cell)"] == "0.1%–3.1%"
    assert facts["load average (1 min, before and after each cell)"] == "0.50–1.25"
    assert facts["software"] == "torch 2.11, transformers 5.17"
    # results made before these were recorded: said so, not guessed
    old = measurement.facts(cells([{"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 4.0}]))
    old = old.set_index("what")["this run"]
    assert old["timing rule"] == old["SM clock over the timed windows"] == measurement.NOT_RECORDED


def test_missing_values_read_alike_with_their_reason_and_no_empty_figure_is_shown(tmp_path):
    """The serving section of a run whose load levels all failed: no figure (a labelled stand-in file only for
    the declared output), a sentence saying why, and every missing value shown as the one mark (never
    "None" or "nan"), with its reason where the section knows it."""
    import re

    from workflow_scripts.report import serving as serving_section
    from workflow_scripts.report.render import MISSING, render

    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 9.0},
                   {"engine": "compile-reduce-overhead", "batch_size": 1, "p50_ms": 0.75},
                   {"engine": "triton-python-grpc", "batch_size": 1, "p50_ms": 2.75, "client": None}])
    failed = pd.DataFrame([{"engine": "triton-python-grpc", **ROLES["triton-python-grpc"], "precision": "bf16",
                            "seq_len": 128, "concurrency": 4, "status": "failed", "reason": "server exited",
                            "client": None, "p50_ms": float("nan"), "p99_ms": float("nan"),
                            "throughput_samples_per_s": float("nan"), "mean_ms": float("nan")}])
    figures = tmp_path / "figures"
    figures.mkdir()
    ctx = ReportContext(table=table, serving=failed, baseline=BASELINE, targets=TARGETS,
                        figure_paths={"throughput_vs_concurrency": str(figures / "throughput_vs_concurrency.png")})
    blocks = serving_section.blocks(ctx)
    assert "figure" not in [kind for kind, *_ in blocks]
    assert ("p", "No throughput figure: no load level produced numbers (their status and reason are in the "
                 "table).") in blocks
    assert (figures / "throughput_vs_concurrency.png").stat().st_size > 0  # Snakemake's declared output
    levels = next(content for kind, content in blocks if kind == "table" and "concurrency" in content)
    assert levels["in-process samples/s at that batch"].tolist() == [
        f"{MISSING} (compile-reduce-overhead not timed at bs4)"]
    render(blocks, figures, str(tmp_path / "report.md"), str(tmp_path / "report.html"))
    for text in ((tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()):
        cells_shown = re.findall(r"<td>(.*?)</td>", text) or [c.strip() for line in text.splitlines()
                                                              if line.startswith("| ") for c in line.split("|")[1:-1]]
        assert cells_shown and not {"None", "nan", "NaN", ""} & set(cells_shown), cells_shown
        assert MISSING in cells_shown
    # a served engine without a load sweep: said so, no figure
    no_sweep = serving_section.blocks(ReportContext(table=table, serving=pd.DataFrame(columns=["engine", "status"]),
                                                    baseline=BASELINE, targets=TARGETS, figure_paths={}))
    assert "figure" not in [kind for kind, *_ in no_sweep] and any("No load sweep" in b[1] for b in no_sweep)


def test_client_and_network_only_where_the_server_counted_the_requests_the_client_timed():
    """A load level whose server window also holds its warm-up (1,000 requests against the 900 timed, with a
    longer queue then) would give a negative network cost: it is missing with both counts instead; a window of
    exactly the timed requests gives the client's mean less the server's phases (means of the same requests)."""
    from workflow_scripts.report import serving

    phases = {"server_queue_ms": 2.5, "server_compute_input_ms": 0.1, "server_compute_infer_ms": 1.2,
              "server_compute_output_ms": 0.2}
    levels = pd.DataFrame([{"mean_ms": 3.5, "iterations": 900, "server_requests": 1000, **phases},
                           {"mean_ms": 4.5, "iterations": 1000, "server_requests": 1000, **phases},
                           {"mean_ms": 4.5, "iterations": 1000, **phases},
                           {"mean_ms": 4.5, "iterations": 1000, "server_requests": 1000,
                            **{k: v for k, v in phases.items() if k != "server_queue_ms"}}])
    split = serving.latency_split(levels)["client+network ms"]
    assert split[0] == "— (server counted 1000 requests, client timed 900)"  # 3.5 - 4.0 would read -0.5 ms
    assert split[1] == pytest.approx(0.5)
    assert split[2] == "— (server requests not recorded)"
    assert split[3] == "— (server reports no queue time)"  # Dynamo's worker: its sum would leave the queue in


def test_figures_draw_ci_error_bars_ticks_at_measured_batches_upright_labels_and_a_legend_beside(monkeypatch):
    """The matplotlib objects the figure functions build from a constructed table (saving skipped)."""
    from workflow_scripts.profiling.kernels import CATEGORIES

    drawn = []
    monkeypatch.setattr(figures, "save", lambda fig, path: drawn.append(fig))
    table = cells([
        {"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 4.0, "p50_ci_low_ms": 3.5,
         "p50_ci_high_ms": 4.75},
        {"engine": "eager", "precision": "fp32", "batch_size": 8, "p50_ms": 10.0, "p50_ci_low_ms": 9.0,
         "p50_ci_high_ms": 12.0},
        {"engine": "fused", "batch_size": 1, "p50_ms": 0.5},
        {"engine": "fused", "batch_size": 64, "p50_ms": 3.0},
        {"engine": "fused", "batch_size": 256, "p50_ms": float("nan"), "status": "failed"},  # no data: no tick
    ])
    figures.plot_versus_batch(table, "p50_ms", "p50 ms", "latency.png", interval=("p50_ci_low_ms", "p50_ci_high_ms"))
    ax = drawn.pop().axes[0]
    assert list(ax.get_xticks()) == [1, 8, 64] and [t.get_text() for t in ax.get_xticklabels()] == ["1", "8", "64"]
    assert len(ax.xaxis.get_minorticklocs()) == 0
    bars = {container.get_label(): container.lines[2][0].get_segments() for container in ax.containers}
    eager = bars["eager fp32 seq128 max_length"]
    assert [(segment[0][0], segment[0][1], segment[1][1]) for segment in eager] == [(1, 3.5, 4.75), (8, 9.0, 12.0)]
    fused = bars["fused bf16 seq128 max_length"]
    assert [value for segment in fused for value in (segment[0][1], segment[1][1])] == pytest.approx(
        [0.49, 0.51, 2.94, 3.06])  # cells()' ±2% CI

    figures.plot_speedup(table, BASELINE, "speedup.png")
    ax = drawn.pop().axes[0]
    labels = ax.get_xticklabels()
    assert [label.get_text() for label in labels] == ["eager\nfp32 seq128 max_length", "fused\nbf16 seq128 max_length"]
    assert all(label.get_rotation() == 0 for label in labels)
    assert ax.get_legend().get_title().get_text() == "batch size"

    chosen = pd.DataFrame([{"engine": "fused", "precision": "bf16", "batch_size": 1, "seq_len": 128,
                            "padding": "max_length", "gpu_busy_ms_per_iter": 0.4,
                            **{f"{name}_ms_per_iter": 0.1 for name in CATEGORIES}}])
    fig = why.plot_breakdown(chosen, pd.DataFrame())
    fig.canvas.draw()
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    assert ax.get_legend().get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1  # beside, not over
    assert [t.get_text() for t in ax.get_legend().get_texts()] == CATEGORIES


def test_a_main_finding_on_an_unstable_pair_says_so():
    """The pair's interval lies above 1, so it is the finding, but the pair switched levels: the sentence
    carries that caveat instead of leaving it to the warnings (a fresh-user trial read it as a clean 1.19×)."""
    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 10.0},
                   {"engine": "torchscript", "precision": "fp32", "batch_size": 1, "p50_ms": 8.0}])
    paired = table.engine == "torchscript"
    table.loc[paired, ["pair_speedup", "pair_ci_low", "pair_ci_high"]] = [1.19, 1.03, 1.62]
    table["pair_unstable"] = ""
    table.loc[paired, "pair_unstable"] = "the ratio switched between two levels, 1.08x and 1.62x"
    ctx = ReportContext(table=table, baseline=BASELINE, targets=TARGETS)
    assert summary_section.main_finding(ctx) == (
        "Main finding: torchscript fp32 bs1 seq128 max_length is 1.19× eager fp32 at the same batch, seq and padding "
        "(side by side, 95% interval 1.03–1.62; the pair is unstable: the ratio switched between two levels, 1.08x "
        "and 1.62x).")
    table.loc[paired, "pair_unstable"] = ""
    assert summary_section.main_finding(ReportContext(table=table, baseline=BASELINE, targets=TARGETS)).endswith(
        "(side by side, 95% interval 1.03–1.62).")


def test_a_p50_ratio_with_an_unstable_cell_reads_unresolved_and_the_pair_is_the_speedup(monkeypatch):
    """The CPU trial's batch 1: eager's p50 caught a slow regime (repeat CV 41%), so torchscript read 5.87× by
    p50s beside 1.19× [1.03–1.62] side by side. The ratio is marked unresolved with why in every table, the
    pair is the speedup (its interval as the figure's error bars), and a cell without a pair is not judged."""
    table = cells([{"device": "cpu", **row} for row in [
        {"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 1986.0, "repeat_p50_cv": 0.411},
        {"engine": "torchscript", "precision": "fp32", "batch_size": 1, "p50_ms": 338.6, "repeat_p50_cv": 0.034},
        {"engine": "compile-default", "precision": "fp32", "batch_size": 1, "p50_ms": 352.0, "repeat_p50_cv": 0.03,
         "p50_ci_low_ms": 350.0, "p50_ci_high_ms": 1985.0},
        {"engine": "eager", "precision": "fp32", "batch_size": 8, "p50_ms": 2100.0, "repeat_p50_cv": 0.02},
        {"engine": "torchscript", "precision": "fp32", "batch_size": 8, "p50_ms": 1400.0, "repeat_p50_cv": 0.03},
        {"engine": "compile-default", "precision": "fp32", "batch_size": 8, "p50_ms": 1000.0, "repeat_p50_cv": 0.02,
         "regime_low_ms": 900.0, "regime_high_ms": 1500.0},
    ]], gpu=None)
    table.loc[table.engine == "torchscript", ["pair_speedup", "pair_ci_low", "pair_ci_high"]] = [[1.19, 1.03, 1.62],
                                                                                                 [1.50, 1.45, 1.55]]
    table["pair_unstable"] = ""
    torchscript_bs1 = (table.engine == "torchscript") & (table.batch_size == 1)
    assert table.loc[torchscript_bs1, "speedup"].item() == pytest.approx(5.865, abs=1e-3)

    shown = headline.headline(table).set_index("engine")
    assert shown.loc["torchscript", "speedup (p50 ratio)"] == "unresolved (baseline: repeat CV 41.1%)"
    assert shown.loc["torchscript", "speedup side by side (95% CI)"] == "1.19× [1.03–1.62]"
    assert shown.loc["eager", "speedup (p50 ratio)"] == "1.00×"  # the baseline against itself: 1 by definition
    full = cells_section.full_table(table).set_index(["engine", "batch_size"])
    assert full.loc[("torchscript", 8), "speedup (p50 ratio)"] == "1.50×"
    assert full.loc[("torchscript", 8), "speedup side by side (95% CI)"] == "1.50× [1.45–1.55]"
    assert full.loc[("compile-default", 8), "speedup (p50 ratio)"] == (
        "unresolved (this cell: two host regimes, 900.000 and 1500.000 ms)")
    assert full.loc[("compile-default", 8), "speedup side by side (95% CI)"] == "— (no pair)"

    bars = figures.speedup_bars(table)
    assert bars.loc[("torchscript fp32 seq128 max_length", 1), ["statistic", "speedup", "low", "high"]].tolist() == [
        "side by side", 1.19, 1.03, 1.62]
    assert bars.loc[("compile-default fp32 seq128 max_length", 1), "statistic"] == "unresolved"
    assert bars.loc[("compile-default fp32 seq128 max_length", 1), "reason"] == "baseline: repeat CV 41.1%"
    assert bars.loc[("eager fp32 seq128 max_length", 8), "statistic"] == "p50 ratio"
    drawn = []
    monkeypatch.setattr(figures, "save", lambda fig, path: drawn.append(fig))
    figures.plot_speedup(table, BASELINE, "speedup.png")
    ax = drawn.pop().axes[0]
    intervals = [(seg[0][1], seg[1][1]) for lines in ax.collections for seg in lines.get_segments()]
    assert sorted(intervals) == [(1.03, 1.62), (1.45, 1.55)]  # the two pairs' error bars, nothing else
    assert sorted(text.get_text() for text in ax.texts) == ["unresolved", "unresolved"]  # compile bs1 and bs8
    heights = sorted(round(patch.get_height(), 2) for patch in ax.patches if patch.get_height() > 0)
    assert heights == [1.0, 1.0, 1.19, 1.5]  # eager's own bars, the two pairs; no 5.87× anywhere

    fastest = summary(table).loc["fastest at batch 1"]
    assert "(cell p50 ratio unresolved; baseline: repeat CV 41.1%)" in fastest.measured
    # without the pair, torchscript's 5.87× is no result: named unresolved, not judged against the target
    alone = summary(table.assign(pair_speedup=float("nan"))).loc["fastest at batch 1"]
    assert alone.measured.endswith("its p50 ratio to eager fp32 is unresolved; baseline: repeat CV 41.1%")
    on_gpu = table.assign(pair_speedup=float("nan"), device="cuda", gpu_name="NVIDIA H200")  # a verdict, not n/a
    assert summary(on_gpu).loc["fastest at batch 1", "verdict"].startswith("no difference resolved from eager fp32")
    ctx = ReportContext(table=table.assign(pair_speedup=float("nan")), baseline=BASELINE, targets=TARGETS)
    assert summary_section.main_finding(ctx).startswith("Main finding: torchscript fp32 bs8 seq128 max_length is 1.50×")


def test_the_largest_batch_row_names_its_fastest_cell_where_no_peak_gives_a_share():
    """The CPU trial's batch 8: eager is resolved fastest, and the row said only "no matmul peak measured"."""
    table = cells([{"device": "cpu", "precision": "fp32", **row} for row in [
        {"engine": "eager", "batch_size": 1, "p50_ms": 1986.0},
        {"engine": "eager", "batch_size": 8, "p50_ms": 2106.5},
        {"engine": "compile-default", "batch_size": 8, "p50_ms": 4525.1},
        {"engine": "torchscript", "batch_size": 8, "p50_ms": 5587.2},
    ]], gpu=None)
    question = "fastest at batch 8: share of the measured matmul peak"
    row = summary(table).loc[question]
    assert row.measured == ("eager fp32 bs8 seq128 max_length (2106.500 ms): share n/a, no matmul peak measured "
                            "(see Roofline)")
    assert row.verdict == "n/a on CPU"
    overlapping = table.assign(p50_ci_high_ms=table.p50_ms * 3)  # every CI overlaps the fastest's
    assert summary(overlapping).loc[question, "measured"].startswith(
        "lowest p50 eager fp32 bs8 seq128 max_length (2106.500 ms), not resolved from compile-default fp32 bs8 "
        "seq128 max_length (4525.100 ms), torchscript fp32 bs8 seq128 max_length (5587.200 ms): share n/a")


def test_the_warm_up_row_gives_settled_and_capped_cells_apart():
    """The CPU trial: one range, 4.5–51.2 s, beside a stated 20-s cap read as a broken cap; the capped warm-ups
    ran past it because the cap is checked only after the every-batch-once pass (8 batches of bs8 on 2 cores)."""
    from workflow_scripts.report import measurement

    def warm(steady, seconds):
        return {"warmup_steady": steady, "warmup_s": seconds, "measurement_warmup_max_seconds": 20.0}

    table = cells([{"engine": engine, "precision": "fp32", "batch_size": batch, "p50_ms": 100.0, **warm(*how)}
                   for engine, batch, how in (("eager", 1, (True, 4.5)), ("torchscript", 1, (True, 10.8)),
                                              ("eager", 8, (False, 21.3)), ("compile-default", 8, (False, 51.2)))])
    assert measurement.facts(table).set_index("what")["this run"]["warm-up"] == (
        "settled in 2 of 4 cells, in 4.5–10.8 s; 2 reached the 20 s cap, in 21.3–51.2 s (the cap is checked after "
        "the every-batch-once pass and after each window, so a warm-up runs past it; named under NOT STEADY above)")
    settled_only = measurement.warmup_row(table.warmup_steady.astype(object).where(table.batch_size == 1),
                                          table.warmup_s, table.measurement_warmup_max_seconds)
    assert settled_only == "settled in 2 of 2 cells, in 4.5–10.8 s"


def test_a_served_cell_without_a_ci_is_ranked_by_its_p50_against_the_leaders_ci():
    # seen on an H200: perf_analyzer's cells carry no bootstrap CI, and once read as "overlapping" the fused cell
    # four times faster
    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 5.7},
                   {"engine": "fused", "batch_size": 1, "p50_ms": 0.483},
                   {"engine": "triton-python-grpc", "batch_size": 1, "p50_ms": 2.137,
                    "p50_ci_low_ms": float("nan"), "p50_ci_high_ms": float("nan")}])
    table.loc[table.engine == "triton-python-grpc", ["p50_ci_low_ms", "p50_ci_high_ms"]] = float("nan")
    measured = summary(table).loc["fastest at batch 1", "measured"]
    assert measured.startswith("fused bf16 bs1 seq128 max_length: 0.483 ms") and "no difference" not in measured
    # its twin (compile-reduce-overhead) was not timed: no overhead to judge, and no crash on the missing mark
    assert summary(table).loc["serving overhead at batch 1", "measured"] == "no served cell with an in-process twin"
    # a CI-less cell whose p50 falls inside the leader's CI is not resolved from it
    close = table.copy()
    close.loc[close.engine == "triton-python-grpc", "p50_ms"] = 0.485
    assert summary(close).loc["fastest at batch 1", "measured"].startswith("no difference resolved")


def test_figures_and_tables_read_without_overlapping_labels_scientific_ticks_or_mid_word_headers(monkeypatch):
    """The CPU trial: the breakdown's six two-line x labels ran into each other, log axes read "4 × 10^0",
    and the HTML headers of raw column names wrapped mid-word ("b/at/ch/_s/iz/e")."""
    from workflow_scripts.profiling.kernels import CATEGORIES
    from workflow_scripts.report import budgets, render

    chosen = pd.DataFrame([{"engine": engine, "precision": "fp32", "batch_size": batch, "seq_len": 128,
                            "padding": "max_length", "gpu_busy_ms_per_iter": 0.4,
                            **{f"{name}_ms_per_iter": 0.1 for name in CATEGORIES}}
                           for engine in ("compile-reduce-overhead", "compile-max-autotune", "torchscript", "eager")
                           for batch in (1, 8)])
    fig = why.plot_breakdown(chosen, pd.DataFrame())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = fig.axes[0].get_yticklabels()
    assert [label.get_text() for label in labels][:2] == ["compile-reduce-overhead fp32 bs1 seq128 max_length",
                                                          "compile-reduce-overhead fp32 bs8 seq128 max_length"]
    boxes = sorted((label.get_window_extent(renderer) for label in labels), key=lambda box: box.y0)
    assert all(lower.y1 <= upper.y0 for lower, upper in zip(boxes, boxes[1:])), "tick labels overlap"

    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": b, "p50_ms": ms}
                   for b, ms in ((1, 340.0), (8, 2100.0))])
    drawn = []
    for module in (figures, budgets):
        monkeypatch.setattr(module, "save", lambda fig, path: drawn.append(fig))
    figures.plot_versus_batch(table, "p50_ms", "p50 ms", "latency.png")
    points = budgets.candidates(table.assign(p99_ms=table.p50_ms), pd.DataFrame(), "p99", TARGETS["max_repeat_cv"])
    budgets.plot_frontiers(points, [100], "p99", "pareto.png")
    for fig in drawn:
        fig.canvas.draw()
        for axis in (fig.axes[0].xaxis, fig.axes[0].yaxis):
            shown = [t.get_text() for t in axis.get_ticklabels(which="both") if t.get_text()]
            assert shown and not [t for t in shown if "times" in t or "^" in t], shown
    latency_ticks = [t.get_text() for t in drawn[0].axes[0].yaxis.get_ticklabels(which="both") if t.get_text()]
    assert {"400", "1,000", "2,000"} <= set(latency_ticks)

    html = render.line_breaks(pd.DataFrame({"batch_size": [1], "samples/s": [2.5]}).to_html(index=False))
    assert "<th>batch_<wbr>size</th>" in html and "<th>samples/<wbr>s</th>" in html and "<td>2.5</td>" in html
    assert render.line_breaks("<th>client+network ms</th><td>+1.250</td><td><code>a_b</code></td>") == (
        "<th>client+<wbr>network ms</th><td>+1.250</td><td><code>a_<wbr>b</code></td>")  # numbers and tags whole
    assert "anywhere" not in render.STYLE  # what broke headers mid-word
