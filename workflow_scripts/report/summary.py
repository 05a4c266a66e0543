"""The report's Summary: the run's answers in one table (the fastest engine and by how much, how close the
largest batch gets to the GPU's measured peak, what serving costs, how steady the timings are), each set
against `report.targets` with the margin by which it meets or misses it."""

import pandas as pd

from workflow_scripts import pair_speedups, roofline
from workflow_scripts.report.context import ReportContext, cell_name
from workflow_scripts.report.serving import in_process_twin


def _verdict(value: float, target: float, higher_is_better: bool, show) -> str:
    """met/missed and by how much; show formats the margin."""
    if pd.isna(value):
        return "not measured"
    margin = value - target if higher_is_better else target - value
    return f"{'met' if margin >= 0 else 'missed'} (by {show(abs(margin))})"


def _points(share: float) -> str:
    return f"{share * 100:.1f} percentage points"


def summary_table(ctx: ReportContext) -> pd.DataFrame:
    """One row per question (columns question, measured, target, verdict) for the run's own machine: pieces
    merged from other machines are left out, as ratios across cards mean nothing. Empty when this machine
    timed no cell."""
    table = ctx.timed_here
    if table.empty:
        return pd.DataFrame([])
    return pd.DataFrame([_fastest_row(ctx), _peak_share_row(ctx), *_serving_overhead_rows(ctx),
                         *_throughput_rows(ctx), _stability_row(ctx)])


def _fastest_row(ctx: ReportContext) -> dict:
    """The fastest cell at the smallest batch and its speedup over the baseline: side by side where the run
    made that pair (the cell p50 ratio beside it), else the cell p50 ratio; the verdict says when the
    comparison is unstable or its 95% interval holds the target."""
    table, baseline, target = ctx.timed_here, ctx.baseline, ctx.targets["min_speedup"]
    smallest = table.batch_size.min()
    best = table[table.batch_size == smallest].sort_values("p50_ms").iloc[0]
    against = f"{baseline['engine']} {baseline['precision']}"
    paired = "pair_speedup" in table and pd.notna(best.pair_speedup)
    if paired:
        speedup = best.pair_speedup
        measured = (f"{cell_name(best)}: {best.p50_ms:.3f} ms, {speedup:.1f}× {against} side by side "
                    f"[{best.pair_ci_low:.1f}–{best.pair_ci_high:.1f}] (cell p50 ratio {best.speedup:.1f}×)")
    else:
        speedup = best.speedup
        measured = (f"{cell_name(best)}: {best.p50_ms:.3f} ms, {speedup:.1f}× {against} at the same batch, seq "
                    "and padding")
    verdict = _verdict(speedup, target, True, lambda v: f"{v:.1f}×")
    if paired and best.pair_ci_low <= target <= best.pair_ci_high:
        verdict += "; the 95% interval holds the target"
    if "pair_speedup" in table:
        base = table[(table.engine == baseline["engine"]) & (table.precision == baseline["precision"])
                     & (table.batch_size == best.batch_size) & (table.seq_len == best.seq_len)
                     & (table.padding == best.padding)]
        caveats = pair_speedups.comparison_caveats(best, base.iloc[0] if len(base) else None,
                                                 ctx.targets["max_repeat_cv"])
        if caveats:
            verdict += f"; unstable comparison: {'; '.join(caveats)}"
    return {"question": f"fastest at batch {smallest}", "measured": measured, "target": f"≥ {target}×",
            "verdict": verdict}


def _peak_share_row(ctx: ReportContext) -> dict:
    """The fastest cell at the largest batch against the measured matmul peak of its own precision."""
    table, target = ctx.timed_here, ctx.targets["min_peak_share"]
    largest = table.batch_size.max()
    at_largest = roofline.roofline_columns(table[table.batch_size == largest], ctx.peaks, ctx.model_info)
    at_largest = at_largest[at_largest.pct_of_matmul_peak.notna()].sort_values("p50_ms")
    if len(at_largest):
        top = at_largest.iloc[0]
        measured = (f"{cell_name(top)}: {top.achieved_tflops:,.1f} of {top.peak_tflops:,.1f} TFLOP/s "
                    f"({top.pct_of_matmul_peak:.1%})")
        share = top.pct_of_matmul_peak
    else:
        measured, share = "no matmul peak measured (see Roofline)", float("nan")
    return {"question": f"fastest at batch {largest}: share of the measured matmul peak", "measured": measured,
            "target": f"≥ {target:.0%}", "verdict": _verdict(share, target, True, _points)}


def _serving_overhead_rows(ctx: ReportContext) -> list[dict]:
    """Per served engine (one row per server: Triton, Dynamo, ...), its least serving overhead at the smallest
    batch (served p50 minus its in-process twin's)."""
    smallest, target = ctx.timed_here.batch_size.min(), ctx.targets["max_serving_overhead_ms"]
    question, shown_target = f"serving overhead at batch {smallest}", f"≤ +{target} ms"
    overhead = ctx.serving_overhead
    served = overhead[(overhead["batch_size"] == smallest) & overhead["overhead ms"].notna()] if len(overhead) \
        else overhead
    if not len(served):
        return [{"question": question, "measured": "no served cell with an in-process twin", "target": shown_target,
                 "verdict": _verdict(float("nan"), target, False, str)}]
    rows = []
    for _, cells in served.groupby("served engine", sort=True):
        least = cells.loc[cells["overhead ms"].idxmin()]
        rows.append({"question": question, "target": shown_target,
                     "measured": f"{least['served engine']} {least['precision']} seq{least['seq_len']} "
                                 f"{least['padding']}: {least['served p50 ms']:.3f} ms vs "
                                 f"{least['in-process engine']} in-process {least['in-process p50 ms']:.3f} ms",
                     "verdict": _verdict(least["overhead ms"], target, False, lambda v: f"{v:.2f} ms")})
    return rows


def _throughput_rows(ctx: ReportContext) -> list[dict]:
    """Per served engine, requests/s at the highest concurrency against the same model in-process at that batch
    size (its best precision and sequence length)."""
    table, serving, target = ctx.timed_here, ctx.serving, ctx.targets["min_serving_throughput_share"]
    question = "served throughput at the highest concurrency"
    ok = serving[serving.status == "ok"] if len(serving) else serving
    highest = ok[ok.concurrency == ok.concurrency.max()] if len(ok) else ok
    best = {}
    for row in highest.itertuples():
        twin = in_process_twin(table, row.twin, row.precision, row.concurrency, row.seq_len)
        if len(twin):
            share = row.throughput_samples_per_s / twin.throughput_samples_per_s.iloc[0]
            if row.engine not in best or share > best[row.engine][0]:
                best[row.engine] = (share, row, twin.iloc[0])
    shown_target = f"≥ {target:.0%} of in-process"
    if not best:
        return [{"question": question, "measured": "no load level with an in-process cell at that batch size",
                 "target": shown_target, "verdict": "not measured"}]
    return [{"question": f"{question} ({row.concurrency} clients)",
             "measured": f"{row.engine} {row.precision} seq{row.seq_len}: {row.throughput_samples_per_s:,.0f} "
                         f"requests/s vs {cell_name(twin)} {twin.throughput_samples_per_s:,.0f} samples/s "
                         f"({share:.0%})",
             "target": shown_target,
             "verdict": _verdict(share, target, True, _points)}
            for _, (share, row, twin) in sorted(best.items())]


def _stability_row(ctx: ReportContext) -> dict:
    """How many timed cells' repeat medians agree within report.targets.max_repeat_cv."""
    limit = ctx.targets["max_repeat_cv"]
    judged = ctx.timed_here[ctx.timed_here.repeat_p50_cv.notna()]
    unstable = judged[judged.repeat_p50_cv > judged.device.map(limit)]
    worst = judged.loc[judged.repeat_p50_cv.idxmax()] if len(judged) else None
    return {"question": "cells whose repeat medians agree",
            "measured": f"{len(judged) - len(unstable)} of {len(judged)}" + (
                f" (widest: {cell_name(worst)}, CV "
                f"{worst.repeat_p50_cv:.1%})" if worst is not None else ""),
            "target": "all, CV ≤ " + ", ".join(f"{v:.0%} ({k})" for k, v in limit.items()),
            "verdict": "not measured" if not len(judged) else
            "met" if not len(unstable) else f"missed ({len(unstable)} cell(s) above)"}


def blocks(ctx: ReportContext) -> list[tuple]:
    """The Summary heading, what it compares, and its table."""
    return [("h2", "Summary"),
            ("p", f"This run's answers on {ctx.machine}, each against `report.targets` (ratios only between cells "
                  "of the same machine)."),
            ("table", summary_table(ctx))]
