"""The report's Summary: the run's answers in one table (the fastest engine and by how much, how close the
largest batch gets to the GPU's measured peak, what serving costs, how steady the timings are), each set
against `report.targets` with the margin by which it meets or misses it."""

import pandas as pd

from workflow_scripts import roofline
from workflow_scripts.experiment import load_config

OK = ["ok", "mismatch"]  # cells with timings (a mismatch is timed, and flagged elsewhere)


def default_targets() -> dict:
    """report.targets of the default experiment (for the report's command line)."""
    return load_config()["report"]["targets"]


def in_process_twin(table: pd.DataFrame, twin: str, precision: str, batch_size: int, seq_len: int,
                    padding: str = "max_length") -> pd.DataFrame:
    """The timed cells of `twin` (the in-process engine a served engine runs: its `twin` column) at one cell."""
    return table[(table.engine == twin) & (table.precision == precision)
                 & (table.batch_size == batch_size) & (table.seq_len == seq_len) & (table.padding == padding)
                 & table.status.isin(OK)]


def _verdict(value: float, target: float, higher_is_better: bool, show) -> str:
    """met/missed and by how much; show formats the margin."""
    if pd.isna(value):
        return "not measured"
    margin = value - target if higher_is_better else target - value
    return f"{'met' if margin >= 0 else 'missed'} (by {show(abs(margin))})"


def _points(share: float) -> str:
    return f"{share * 100:.1f} percentage points"


def summary_table(table: pd.DataFrame, serving: pd.DataFrame, peaks: dict | None, model_info: dict,
                  baseline: dict, targets: dict, overhead: pd.DataFrame) -> pd.DataFrame:
    """One row per question for the run's own machine (the first cell's GPU or CPU: pieces merged from
    other machines are left out, as ratios across cards mean nothing).

    table: the cells with their `speedup`; overhead: report.serving_overhead() of the same cells."""
    machine = table.gpu_name.fillna("CPU: " + table.cpu.astype(str))
    table = table[(machine == machine.iloc[0]) & table.status.isin(OK)]
    rows = []
    if table.empty:
        return pd.DataFrame(rows)
    smallest, largest = table.batch_size.min(), table.batch_size.max()

    best = table[table.batch_size == smallest].sort_values("p50_ms").iloc[0]
    rows.append({"question": f"fastest at batch {smallest}",
                 "measured": f"{best.engine} {best.precision}: {best.p50_ms:.3f} ms, {best.speedup:.1f}× "
                             f"{baseline['engine']} {baseline['precision']}",
                 "target": f"≥ {targets['min_speedup']}×",
                 "verdict": _verdict(best.speedup, targets["min_speedup"], True, lambda v: f"{v:.1f}×")})

    at_largest = roofline.roofline_columns(table[table.batch_size == largest], peaks, model_info)
    at_largest = at_largest[at_largest.pct_of_matmul_peak.notna()].sort_values("p50_ms")
    if len(at_largest):  # the fastest cell, against the peak of its own precision
        top = at_largest.iloc[0]
        measured = (f"{top.engine} {top.precision}: {top.achieved_tflops:,.1f} of {top.peak_tflops:,.1f} TFLOP/s "
                    f"({top.pct_of_matmul_peak:.1%})")
        share = top.pct_of_matmul_peak
    else:
        measured, share = "no matmul peak measured (see Roofline)", float("nan")
    rows.append({"question": f"fastest at batch {largest}: share of the measured matmul peak", "measured": measured,
                 "target": f"≥ {targets['min_peak_share']:.0%}",
                 "verdict": _verdict(share, targets["min_peak_share"], True, _points)})

    served = overhead[(overhead["batch_size"] == smallest) & overhead["overhead ms"].notna()] if len(overhead) \
        else overhead
    if len(served):
        least = served.loc[served["overhead ms"].idxmin()]
        measured = (f"{least['served engine']} {least['precision']}: {least['served p50 ms']:.3f} ms vs "
                    f"{least['in-process engine']} in-process {least['in-process p50 ms']:.3f} ms")
        value = least["overhead ms"]
    else:
        measured, value = "no served cell with an in-process twin", float("nan")
    rows.append({"question": f"serving overhead at batch {smallest}", "measured": measured,
                 "target": f"≤ +{targets['max_serving_overhead_ms']} ms",
                 "verdict": _verdict(value, targets["max_serving_overhead_ms"], False, lambda v: f"{v:.2f} ms")})

    rows.append(_throughput_row(table, serving, targets))

    limit = targets["max_repeat_cv"]
    judged = table[table.repeat_p50_cv.notna()]
    unstable = judged[judged.repeat_p50_cv > judged.device.map(limit)]
    worst = judged.loc[judged.repeat_p50_cv.idxmax()] if len(judged) else None
    rows.append({"question": "cells whose repeat medians agree",
                 "measured": f"{len(judged) - len(unstable)} of {len(judged)}" + (
                     f" (widest: {worst.engine} {worst.precision} bs{worst.batch_size}, CV "
                     f"{worst.repeat_p50_cv:.1%})" if worst is not None else ""),
                 "target": "all, CV ≤ " + ", ".join(f"{v:.0%} ({k})" for k, v in limit.items()),
                 "verdict": "not measured" if not len(judged) else
                 "met" if not len(unstable) else f"missed ({len(unstable)} cell(s) above)"})
    return pd.DataFrame(rows)


def _throughput_row(table: pd.DataFrame, serving: pd.DataFrame, targets: dict) -> dict:
    """Served requests/s at the highest concurrency against the same model in-process at that batch size."""
    question = "served throughput at the highest concurrency"
    ok = serving[serving.status == "ok"] if len(serving) else serving
    highest = ok[ok.concurrency == ok.concurrency.max()] if len(ok) else ok
    best = None
    for row in highest.itertuples():
        twin = in_process_twin(table, row.twin, row.precision, row.concurrency, row.seq_len)
        if len(twin):
            share = row.throughput_samples_per_s / twin.throughput_samples_per_s.iloc[0]
            if best is None or share > best[0]:
                best = (share, row, twin.iloc[0])
    target = f"≥ {targets['min_serving_throughput_share']:.0%} of in-process"
    if best is None:
        return {"question": question, "measured": "no load level with an in-process cell at that batch size",
                "target": target, "verdict": "not measured"}
    share, row, twin = best
    return {"question": f"{question} ({row.concurrency} clients)",
            "measured": f"{row.engine} {row.precision}: {row.throughput_samples_per_s:,.0f} requests/s vs "
                        f"{twin.engine} batch {twin.batch_size} {twin.throughput_samples_per_s:,.0f} samples/s "
                        f"({share:.0%})",
            "target": target,
            "verdict": _verdict(share, targets["min_serving_throughput_share"], True, _points)}
