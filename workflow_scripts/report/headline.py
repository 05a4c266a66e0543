"""The report's headline table, in the original study's form: every engine and precision at the smallest
batch size, fastest first."""

import pandas as pd

from workflow_scripts import pair_speedups
from workflow_scripts.report.context import ReportContext, p50_ratio_text, shows_tokens_per_batch
from workflow_scripts.report.render import MISSING, fmt, missing
from workflow_scripts.results import TIMED_STATUSES


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """Cells at the smallest batch: p50 (ms) with its bootstrap 95% CI, the speedup side by side (its pair's
    95% interval) and as the p50 ratio ("unresolved (why)" where either cell is unstable: context.p50_ratio_text),
    accuracy and status; untimed cells (skipped, failed, oom) last. Tokens per batch where dynamic padding is in
    the sweep."""
    smallest = table.batch_size.min()
    rows = table[(table.batch_size == smallest)].sort_values("p50_ms", na_position="last")
    tokens = {"tokens/batch": rows.tokens_per_batch.map(fmt("rate"))} if shows_tokens_per_batch(table) else {}
    return pd.DataFrame({
        "engine": rows.engine, "precision": rows.precision, "seq_len": rows.seq_len, "padding": rows.padding,
        **tokens,
        f"p50 ms (bs{smallest})": rows.p50_ms.map(fmt("ms")),
        "95% CI of p50": [f"{lo:.3f}–{hi:.3f}" if pd.notna(lo) else "" for lo, hi in
                          zip(rows.p50_ci_low_ms, rows.p50_ci_high_ms)],
        # side by side in one process (workflow_scripts/pair.py), where the run made that pair: the speedup
        # first, as the Summary states it
        "speedup side by side (95% CI)": [pair_speedups.pair_speedup_text(r) or (
            missing("no pair") if r.status in TIMED_STATUSES else MISSING) for r in rows.itertuples()]
        if "pair_speedup" in rows else MISSING,
        "speedup (p50 ratio)": [p50_ratio_text(r) for r in rows.itertuples()],
        "accuracy": rows.accuracy.map(fmt("pct")) if "accuracy" in rows else "",
        "status": rows.status,
    })


def blocks(ctx: ReportContext) -> list[tuple]:
    """The headline heading and table."""
    return [("h2", "Headline: smallest batch"),
            ("p", f"Speedups over {ctx.baseline['engine']} {ctx.baseline['precision']}, one statistic per column: "
                  "side by side (both engines in one process, the median of paired window ratios, its 95% "
                  "interval in brackets) where the run made that pair; the ratio of the two cells' p50s, "
                  "\"unresolved\" with why where either cell is unstable (repeat medians spread beyond "
                  "report.targets.max_repeat_cv, or two host regimes)."),
            ("table", headline(ctx.table))]
