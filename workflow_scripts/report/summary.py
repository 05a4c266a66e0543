"""The report's Summary: the run's main finding, then its answers in one table (the fastest engine and by how
much, how close the largest batch gets to the GPU's measured peak, what serving costs, how steady the timings
are), each set against `report.targets` with the ratio of measured to target.

A cell is named faster than another only when the difference is resolved: their p50 95% CIs do not overlap, or,
against the baseline, the side-by-side pair's 95% interval excludes 1. Otherwise the Summary says "no difference
resolved" instead of crowning a winner inside the noise."""

import pandas as pd

from workflow_scripts import pair_speedups, roofline
from workflow_scripts.report.context import ReportContext, cell_name
from workflow_scripts.report.serving import in_process_twin
from workflow_scripts.wording import count


# Targets set for GPUs (a 10x speedup, a share of the GPU's matmul peak, sub-millisecond serving overhead, served
# throughput near in-process): on a CPU-only run the Summary still shows what was measured, with the verdict
# "n/a on CPU"
GPU_ONLY_TARGETS = ("min_speedup", "min_peak_share", "max_serving_overhead_ms", "min_serving_throughput_share")
NOT_ON_CPU = "n/a on CPU"


def _verdict(value: float, target: float, higher_is_better: bool) -> str:
    """met/missed with the margin as a ratio: measured / target (e.g. "missed (0.11× the target)")."""
    if pd.isna(value):
        return "not measured"
    met = value >= target if higher_is_better else value <= target
    ratio = f"{value / target:.2f}× the target" if target else f"measured {value:.3g}"
    return f"{'met' if met else 'missed'} ({ratio})"


def _on_cpu(ctx: ReportContext) -> bool:
    return bool((ctx.timed_here.device == "cpu").all())


def _applies(ctx: ReportContext, target: str, verdict: str) -> str:
    """The verdict, or "n/a on CPU" for a GPU-only target on a CPU-only run."""
    return NOT_ON_CPU if target in GPU_ONLY_TARGETS and _on_cpu(ctx) else verdict


def resolved(fast, slow, by_p50_without_ci: bool = False) -> bool:
    """Whether cell `fast` is resolved faster than cell `slow`: fast's p50 95% CI lies wholly below slow's.
    fast, slow: cells.csv rows with p50_ms, p50_ci_low_ms and p50_ci_high_ms (ms). A missing CI resolves
    nothing, unless `by_p50_without_ci` (ranking cells): then a cell without one (a served cell, timed by its
    load client's own stability windows) counts as its p50, and only two cells without a CI resolve nothing."""
    high, low = fast.p50_ci_high_ms, slow.p50_ci_low_ms
    if by_p50_without_ci and not (pd.isna(high) and pd.isna(low)):
        high = fast.p50_ms if pd.isna(high) else high
        low = slow.p50_ms if pd.isna(low) else low
    return bool(high < low)  # NaN compares False


def _paired(cell) -> bool:
    return pd.notna(getattr(cell, "pair_speedup", float("nan")))


def _ratio_unresolved(cell) -> str:
    """Why the cell's p50 ratio to the baseline is no result (context.with_speedup), "" where it is one."""
    reasons = getattr(cell, "speedup_unresolved", "")
    return reasons if isinstance(reasons, str) else ""


def resolved_over_baseline(cell, base) -> bool:
    """Whether `cell` is resolved faster than the baseline cell `base` (None: no baseline there): the
    side-by-side pair's 95% interval lies above 1 where the run made that pair, else the CIs lie apart and
    neither cell is unstable (an unstable cell's p50 ratio resolves nothing)."""
    if _paired(cell):
        return bool(cell.pair_ci_low > 1)
    return base is not None and not _ratio_unresolved(cell) and resolved(cell, base)


def _same_place(table: pd.DataFrame, row) -> pd.DataFrame:
    return table[(table.batch_size == row.batch_size) & (table.seq_len == row.seq_len)
                 & (table.padding == row.padding)]


def _baseline_cell(ctx: ReportContext, row):
    base = _same_place(ctx.timed_here, row)
    base = base[(base.engine == ctx.baseline["engine"]) & (base.precision == ctx.baseline["precision"])]
    return base.iloc[0] if len(base) else None


def _is_baseline(ctx: ReportContext, row) -> bool:
    return row.engine == ctx.baseline["engine"] and row.precision == ctx.baseline["precision"]


def main_finding(ctx: ReportContext) -> str:
    """The run's main finding in one sentence: the largest speedup over the baseline that is resolved
    (resolved_over_baseline), at whichever batch size; or that no cell is resolved faster than the baseline."""
    best, best_speedup = None, 0.0
    for row in ctx.timed_here.itertuples():
        speedup = row.pair_speedup if _paired(row) else row.speedup
        if (pd.notna(speedup) and not _is_baseline(ctx, row) and speedup > best_speedup
                and resolved_over_baseline(row, _baseline_cell(ctx, row))):
            best, best_speedup = row, speedup
    baseline = f"{ctx.baseline['engine']} {ctx.baseline['precision']}"
    if best is None:
        return (f"Main finding: no cell is resolved faster than {baseline}: for every faster cell, its p50 95% CI "
                "overlaps the baseline's, its side-by-side interval holds 1, or it or the baseline is unstable "
                "(see the headline for which).")
    how = (f"side by side, 95% interval {best.pair_ci_low:.2f}–{best.pair_ci_high:.2f}" if _paired(best) else
           f"p50 {best.p50_ms:.3f} ms, 95% CI {best.p50_ci_low_ms:.3f}–{best.p50_ci_high_ms:.3f}")
    unstable = getattr(best, "pair_unstable", "") if _paired(best) else ""
    if isinstance(unstable, str) and unstable:  # the caveat travels with the finding, not only in the warnings
        how += f"; the pair is unstable: {unstable}"
    return f"Main finding: {cell_name(best)} is {best_speedup:.2f}× {baseline} at the same batch, seq and padding ({how})."


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
    made that pair (the cell p50 ratio beside it), else the cell p50 ratio ("unresolved" with why where either
    cell is unstable, and then not judged against the target). The cell is named only when its
    p50 CI lies apart from every other cell's there, and its speedup judged only when resolved over the
    baseline (resolved_over_baseline); the verdict says when the comparison is unstable or its 95% interval
    holds the target."""
    table, baseline, target = ctx.timed_here, ctx.baseline, ctx.targets["min_speedup"]
    smallest = table.batch_size.min()
    best, tied = _fastest_at(ctx, smallest)
    base = _baseline_cell(ctx, best)
    against = f"{baseline['engine']} {baseline['precision']}"
    paired = _paired(best)
    speedup = best.pair_speedup if paired else best.speedup
    unresolved = _ratio_unresolved(best)
    ratio = f"unresolved; {unresolved}" if unresolved else f"{best.speedup:.2f}×"
    if paired:
        measured = (f"{cell_name(best)}: {best.p50_ms:.3f} ms, {speedup:.2f}× {against} side by side "
                    f"[{best.pair_ci_low:.2f}–{best.pair_ci_high:.2f}] (cell p50 ratio {ratio})")
    elif unresolved:
        measured = f"{cell_name(best)}: {best.p50_ms:.3f} ms; its p50 ratio to {against} is {ratio}"
    else:
        measured = (f"{cell_name(best)}: {best.p50_ms:.3f} ms, {speedup:.2f}× {against} at the same batch, seq "
                    "and padding")
    if tied:
        measured = (f"no difference resolved: {cell_name(best)} ({best.p50_ms:.3f} ms) and "
                    + ", ".join(f"{cell_name(row)} ({row.p50_ms:.3f} ms)" for row in tied)
                    + " have overlapping p50 95% CIs")
    if pd.isna(speedup):
        verdict = "not measured"
    elif _is_baseline(ctx, best) or not resolved_over_baseline(best, base):
        verdict = f"no difference resolved from {against}"
    else:
        verdict = _verdict(speedup, target, True)
        if paired and best.pair_ci_low <= target <= best.pair_ci_high:  # met or missed by the point alone
            verdict = (f"not resolved: the 95% interval {best.pair_ci_low:.2f}–{best.pair_ci_high:.2f}× holds the "
                       f"target ({'met' if speedup >= target else 'missed'} by the median alone, "
                       f"{speedup / target:.2f}× the target)")
    if "pair_speedup" in table:
        caveats = pair_speedups.comparison_caveats(best, base, ctx.targets["max_repeat_cv"])
        if caveats:
            verdict += f"; unstable comparison: {'; '.join(caveats)}"
    return {"question": f"fastest at batch {smallest}", "measured": measured, "target": f"≥ {target}×",
            "verdict": _applies(ctx, "min_speedup", verdict)}


def _fastest_at(ctx: ReportContext, batch_size: int) -> tuple:
    """(the cell with the lowest p50 at batch_size on this machine, the cells not resolved from it, a cell
    without a CI counting as its p50)."""
    ranked = ctx.timed_here[ctx.timed_here.batch_size == batch_size].sort_values("p50_ms")
    best = ranked.iloc[0]
    return best, [row for row in ranked.iloc[1:].itertuples() if not resolved(best, row, by_p50_without_ci=True)]


def _peak_share_row(ctx: ReportContext) -> dict:
    """The fastest cell at the largest batch (named, with "not resolved from" the cells whose CI overlaps its
    own) and its share of the measured matmul peak of its own precision ("n/a" with why where none was
    measured, e.g. on CPU)."""
    target, largest = ctx.targets["min_peak_share"], ctx.timed_here.batch_size.max()
    best, tied = _fastest_at(ctx, largest)
    top = roofline.roofline_columns(ctx.timed_here.loc[[best.name]], ctx.peaks, ctx.model_info).iloc[0]
    named = f"{cell_name(best)} ({best.p50_ms:.3f} ms)"
    if tied:
        named = (f"lowest p50 {named}, not resolved from "
                 + ", ".join(f"{cell_name(row)} ({row.p50_ms:.3f} ms)" for row in tied))
    share = top.pct_of_matmul_peak
    if pd.notna(share):
        measured = f"{named}: {top.achieved_tflops:,.1f} of {top.peak_tflops:,.1f} TFLOP/s ({share:.1%})"
    else:
        why = ("no matmul peak measured (see Roofline)" if not roofline.peak_ok(ctx.peaks)
               else f"no matmul peak measured for {best.precision}")
        measured = f"{named}: share n/a, {why}"
    return {"question": f"fastest at batch {largest}: share of the measured matmul peak", "measured": measured,
            "target": f"≥ {target:.0%}", "verdict": _applies(ctx, "min_peak_share", _verdict(share, target, True))}


def _serving_overhead_rows(ctx: ReportContext) -> list[dict]:
    """Per served engine (one row per server: Triton, Dynamo, ...), its least serving overhead at the smallest
    batch (served p50 minus its in-process twin's)."""
    smallest, target = ctx.timed_here.batch_size.min(), ctx.targets["max_serving_overhead_ms"]
    question, shown_target = f"serving overhead at batch {smallest}", f"≤ +{target} ms"
    overhead = ctx.serving_overhead
    # an overhead is missing (a "—" with the reason) where the twin was not timed at that cell
    served = overhead[(overhead["batch_size"] == smallest)
                      & pd.to_numeric(overhead["overhead ms"], errors="coerce").notna()] if len(overhead) else overhead
    if not len(served):
        return [{"question": question, "measured": "no served cell with an in-process twin", "target": shown_target,
                 "verdict": _applies(ctx, "max_serving_overhead_ms", "not measured")}]
    rows = []
    for _, cells in served.groupby("served engine", sort=True):
        least = cells.loc[cells["overhead ms"].idxmin()]
        rows.append({"question": question, "target": shown_target,
                     "measured": f"{least['served engine']} {least['precision']} seq{least['seq_len']} "
                                 f"{least['padding']}: {least['served p50 ms']:.3f} ms vs "
                                 f"{least['in-process engine']} in-process {least['in-process p50 ms']:.3f} ms "
                                 f"({least['overhead ms']:+.3f} ms)",
                     "verdict": _applies(ctx, "max_serving_overhead_ms",
                                         _verdict(least["overhead ms"], target, False))})
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
                 "target": shown_target, "verdict": _applies(ctx, "min_serving_throughput_share", "not measured")}]
    return [{"question": f"{question} ({row.concurrency} clients)",
             "measured": f"{row.engine} {row.precision} seq{row.seq_len}: {row.throughput_samples_per_s:,.0f} "
                         f"requests/s vs {cell_name(twin)} {twin.throughput_samples_per_s:,.0f} samples/s "
                         f"({share:.0%})",
             "target": shown_target,
             "verdict": _applies(ctx, "min_serving_throughput_share", _verdict(share, target, True))}
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
            "met" if not len(unstable) else f"missed ({count(len(unstable), 'cell')} above)"}


def blocks(ctx: ReportContext) -> list[tuple]:
    """The Summary heading, what it compares, and its table."""
    return [("h2", "Summary"),
            ("p", main_finding(ctx) if len(ctx.timed_here) else "No cell was timed on this machine."),
            ("p", f"This run's answers on {ctx.machine}, each against report.targets (ratios only between cells "
                  "of the same machine; latency is the p50 per batch; a cell is named faster only when its 95% CI "
                  "lies apart from the others', or against the baseline when its side-by-side interval excludes 1). "
                  "Each served engine's rows give its least overhead and its best share of in-process throughput "
                  "over the run's precisions, each naming its precision; the Serving section has them all."),
            ("table", summary_table(ctx))]
