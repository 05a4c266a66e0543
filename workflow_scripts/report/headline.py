"""The report's headline table, in the original study's form: every engine and precision at the smallest
batch size, fastest first."""

import pandas as pd

from workflow_scripts import pair_speedups
from workflow_scripts.report.context import ReportContext, shows_tokens_per_batch
from workflow_scripts.report.render import MISSING, fmt, missing
from workflow_scripts.results import TIMED_STATUSES


def headline(table: pd.DataFrame) -> pd.DataFrame:
    """Cells at the smallest batch: p50 (ms) with its bootstrap 95% CI, speedup, accuracy and status;
    untimed cells (skipped, failed, oom) last. Tokens per batch where dynamic padding is in the sweep."""
    smallest = table.batch_size.min()
    rows = table[(table.batch_size == smallest)].sort_values("p50_ms", na_position="last")
    tokens = {"tokens/batch": rows.tokens_per_batch.map(fmt("rate"))} if shows_tokens_per_batch(table) else {}
    return pd.DataFrame({
        "engine": rows.engine, "precision": rows.precision, "seq_len": rows.seq_len, "padding": rows.padding,
        **tokens,
        f"p50 ms (bs{smallest})": rows.p50_ms.map(fmt("ms")),
        "95% CI of p50": [f"{lo:.3f}–{hi:.3f}" if pd.notna(lo) else "" for lo, hi in
                          zip(rows.p50_ci_low_ms, rows.p50_ci_high_ms)],
        "speedup (p50 ratio)": rows.speedup.map(fmt("x")),
        # side by side in one process (workflow_scripts/pair.py), where the run made that pair
        "speedup side by side (95% CI)": [pair_speedups.pair_speedup_text(r) or (
            missing("no pair") if r.status in TIMED_STATUSES else MISSING) for r in rows.itertuples()]
        if "pair_speedup" in rows else MISSING,
        "accuracy": rows.accuracy.map(fmt("pct")) if "accuracy" in rows else "",
        "status": rows.status,
    })


def blocks(ctx: ReportContext) -> list[tuple]:
    """The headline heading and table."""
    return [("h2", "Headline: smallest batch"), ("table", headline(ctx.table))]
