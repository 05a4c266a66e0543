"""Speedups from side-by-side pairs joined to the cells, and why a comparison is not to be trusted."""
import pandas as pd
import pytest

from workflow_scripts import pair_speedups

BASELINE = {"engine": "eager", "precision": "fp32"}
LIMITS = {"cuda": 0.01, "cpu": 0.05}


def cells(rows):
    base = {"precision": "bf16", "seq_len": 128, "padding": "max_length", "device": "cuda", "status": "ok",
            "gpu_name": "NVIDIA H200", "repeat_p50_cv": 0.002, "regime_low_ms": None, "regime_high_ms": None,
            "warmup_steady": True, "throttled": False, "steal_heavy": False, "cpu_steal_share": 0.0}
    return pd.DataFrame([{**base, **row} for row in rows])


def pairs(rows):
    base = {"precision": "bf16", "seq_len": 128, "padding": "max_length", "status": "ok",
            "baseline_engine": "eager", "baseline_precision": "fp32", "gpu_name": "NVIDIA H200", "unstable": None}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_pair_speedups_join_their_cells_on_the_same_machine_and_baseline():
    table = cells([{"engine": "fused", "batch_size": 1, "p50_ms": 0.5},
                   {"engine": "fused", "batch_size": 8, "p50_ms": 0.6},
                   {"engine": "fused", "batch_size": 1, "p50_ms": 0.7, "gpu_name": "NVIDIA H100"}])
    found = pairs([{"engine": "fused", "batch_size": 1, "speedup": 8.9, "speedup_ci_low": 8.7,
                    "speedup_ci_high": 9.1},
                   {"engine": "fused", "batch_size": 8, "speedup": 5.0, "speedup_ci_low": 4.0, "speedup_ci_high": 6.0,
                    "baseline_precision": "bf16"}])  # against another baseline: not this report's
    joined = pair_speedups.with_pair_speedups(table, found, BASELINE)
    assert joined.pair_speedup.tolist()[0] == 8.9
    assert joined.pair_speedup.isna().tolist() == [False, True, True]
    assert pair_speedups.pair_speedup_text(joined.iloc[0]) == "8.90× [8.70–9.10]"
    assert pair_speedups.pair_speedup_text(joined.iloc[1]) == ""


def test_without_pairs_every_cell_keeps_only_its_p50_ratio():
    table = cells([{"engine": "fused", "batch_size": 1, "p50_ms": 0.5}])
    joined = pair_speedups.with_pair_speedups(table, pd.DataFrame(), BASELINE)
    assert joined.pair_speedup.isna().all() and len(joined) == 1


def test_an_unstable_pair_says_why_and_a_cell_ratio_names_both_cells_caveats():
    table = cells([{"engine": "fused", "batch_size": 1, "p50_ms": 0.5},
                   {"engine": "eager", "precision": "fp32", "batch_size": 1, "p50_ms": 6.0, "repeat_p50_cv": 0.28,
                    "regime_low_ms": 4.5, "regime_high_ms": 8.3},
                   {"engine": "compile-reduce-overhead", "batch_size": 1, "p50_ms": 0.8}])
    found = pairs([{"engine": "fused", "batch_size": 1, "speedup": 9.0, "speedup_ci_low": 6.0,
                    "speedup_ci_high": 14.0, "unstable": "95% interval 6-14x is wider than 5% of the speedup"}])
    joined = pair_speedups.with_pair_speedups(table, found, BASELINE).set_index("engine", drop=False)
    fused, eager, graphed = joined.loc["fused"], joined.loc["eager"], joined.loc["compile-reduce-overhead"]
    assert pair_speedups.comparison_caveats(fused, eager, LIMITS) == [
        "95% interval 6-14x is wider than 5% of the speedup"]
    assert pair_speedups.pair_speedup_text(fused).endswith(", unstable")
    assert pair_speedups.comparison_caveats(graphed, eager, LIMITS) == [
        "baseline: repeat CV 28.0%", "baseline: two host regimes, 4.500 and 8.300 ms"]


def test_measurement_warnings_name_the_cells_and_pairs():
    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": 1, "regime_low_ms": 4.5,
                    "regime_high_ms": 8.3},
                   {"engine": "fused", "batch_size": 1, "warmup_steady": False, "throttled": True},
                   {"engine": "fused", "batch_size": 8, "steal_heavy": True, "cpu_steal_share": 0.05}])
    found = pairs([{"engine": "fused", "batch_size": 1, "unstable": "the ratio switched between two levels"}])
    notes = pair_speedups.measurement_warnings(table, found)
    assert [note.split(":")[0] for note in notes] == ["REGIMES", "NOT STEADY", "THROTTLED", "STEAL", "UNSTABLE PAIRS"]
    assert "eager fp32 bs1 seq128 max_length (4.500 / 8.300 ms)" in notes[0]
    assert "fused bf16 bs8 seq128 max_length" in notes[3]
    assert "fused bf16 bs1 seq128 max_length vs eager fp32: the ratio switched" in notes[4]
    assert pair_speedups.measurement_warnings(cells([{"engine": "eager", "batch_size": 1}]), None) == []


@pytest.mark.parametrize("row,expected", [
    ({"repeat_p50_cv": 0.04, "device": "cpu"}, []),
    ({"repeat_p50_cv": 0.06, "device": "cpu"}, ["repeat CV 6.0%"]),
])
def test_cell_caveats_use_the_devices_limit(row, expected):
    cell = cells([{"engine": "eager", "batch_size": 1, **row}]).iloc[0]
    assert pair_speedups.cell_caveats(cell, LIMITS) == expected


def test_a_load_above_the_cores_allowed_is_warned_with_its_numbers():
    """The CPU trial: load averages up to 4.58 on the 2 cores each job was allowed, recorded but not warned."""
    host = {"load_average_start": 1.92, "load_average_end": 1.95, "cpu_affinity": "0-1"}
    table = cells([{"engine": "eager", "precision": "fp32", "batch_size": 1, **host},
                   {"engine": "eager", "precision": "fp32", "batch_size": 8, **host, "load_average_end": 4.58},
                   {"engine": "fused", "batch_size": 8, **host, "load_average_start": 2.85, "cpu_affinity": "0-2,5"},
                   {"engine": "fused", "batch_size": 1, **host, "load_average_start": 9.0, "cpu_affinity": None}])
    notes = pair_speedups.measurement_warnings(table, None)
    assert notes == ["LOAD: the 1-min load average exceeded the CPU cores the job was allowed (other work wanted "
                     "those cores while timing): eager fp32 bs8 seq128 max_length (load 4.58 on 2 cores)"]
    assert pair_speedups.measurement_warnings(table.drop(columns="cpu_affinity"), None) == []  # older results
    from workflow_scripts.report import measurement

    facts = measurement.facts(table.assign(time_utc=None)).set_index("what")["this run"]
    assert facts["load average (1 min, before and after each cell)"] == (
        "1.92–9.00; above the cores allowed in 1 cell(s) (named under LOAD above)")
