"""The report's "All cells" table: every cell with its latency statistics, throughput, speedup, stability,
first-call time, memory and when it was measured, cells from another run marked (its correctness: the
Correctness table)."""

import pandas as pd

from workflow_scripts import pair_speedups
from workflow_scripts.report.context import ReportContext, p50_ratio_text, shows_tokens_per_batch
from workflow_scripts.report.render import MISSING, fmt, missing
from workflow_scripts.results import CELL_KEYS, TIMED_STATUSES

# column -> number format (render.NUMBER_FORMATS; None: shown as is, or as full_table writes the speedups), in the
# table's order
COLUMNS = {**dict.fromkeys(CELL_KEYS), "tokens_per_batch": "rate", "status": None, "p50_ms": "ms", "p90_ms": "ms", "p99_ms": "ms",
           "mean_ms": "ms", "std_ms": "ms", "gpu_p50_ms": "ms", "throughput_samples_per_s": "rate",
           "pair_speedup": None, "speedup": None,
           "repeat_p50_cv": "pct", "first_call_s": "s", "peak_gpu_mb": "rate", "iterations": None}
# (max_abs_diff and agreement are in the Correctness table right after: here they made the table wider than the
# page once headers no longer broke mid-word)
# Cells measured more than this far apart in time belong to different runs (a batch size added a day later ran
# under another machine load): the table marks every cell outside the run that measured most cells
RUN_GAP = pd.Timedelta(hours=1)


def run_of_each_cell(times: pd.Series) -> pd.Series:
    """Per cell, the number of the run that measured it (0 = the run with most cells): times sorted and split
    wherever two consecutive cells are more than RUN_GAP apart. times: ISO 8601 timestamps (NaN: unknown, run 0)."""
    stamps = pd.to_datetime(times, utc=True, errors="coerce")
    order = stamps.sort_values()
    run = (order.diff() > RUN_GAP).cumsum().reindex(stamps.index)
    main_run = run.mode().iloc[0] if run.notna().any() else 0
    # renumber: the main run 0, the others by time
    others = sorted(set(run.dropna()) - {main_run})
    return run.map({main_run: 0, **{r: i + 1 for i, r in enumerate(others)}}).fillna(0).astype(int)


def measured_column(table: pd.DataFrame) -> pd.Series:
    """"YYYY-MM-DD HH:MM" (UTC) per cell, with ", another run" for cells outside the main run."""
    if "time_utc" not in table:
        return pd.Series("", index=table.index)
    stamps = pd.to_datetime(table.time_utc, utc=True, errors="coerce")
    run = run_of_each_cell(table.time_utc)
    return pd.Series([("" if pd.isna(t) else t.strftime("%Y-%m-%d %H:%M")) + (", another run" if r else "")
                      for t, r in zip(stamps, run)], index=table.index)


def full_table(table: pd.DataFrame) -> pd.DataFrame:
    """The COLUMNS the table has, formatted, with readable names for throughput, CV, speedups and first call;
    tokens per batch only where dynamic padding is in the sweep, the side-by-side speedup only where the run
    made pairs."""
    shown = [c for c in COLUMNS if c in table and (c != "tokens_per_batch" or shows_tokens_per_batch(table))]
    out = table[shown].copy()
    out = out.drop(columns=[c for c in out if c not in CELL_KEYS and out[c].isna().all()])  # GPU columns on CPU
    for column, kind in COLUMNS.items():
        if kind and column in out:
            out[column] = out[column].map(fmt(kind))
    # the two speedups, one statistic per column (as the headline's)
    if "pair_speedup" in out:
        out["pair_speedup"] = [pair_speedups.pair_speedup_text(r) or (
            missing("no pair") if r.status in TIMED_STATUSES else MISSING) for r in table.itertuples()]
    if "speedup" in out:
        out["speedup"] = [p50_ratio_text(r) for r in table.itertuples()]
    out["measured (UTC)"] = measured_column(table)
    return out.rename(columns={"tokens_per_batch": "tokens/batch", "throughput_samples_per_s": "samples/s",
                               "repeat_p50_cv": "repeat CV", "pair_speedup": "speedup side by side (95% CI)",
                               "speedup": "speedup (p50 ratio)",
                               "first_call_s": "first call s"})


def blocks(ctx: ReportContext) -> list[tuple]:
    """The "All cells" heading, what its columns mean, and the table."""
    return [("h2", "All cells"),
            ("p", "Latency per batch in ms over the timed iterations (iterations: the timed calls of the cell; "
                  "with fewer than 100, p99 is close to the slowest call); samples/s = batch size / p50. Speedups "
                  "as in the headline, one statistic per column: side by side with its pair's 95% interval, and "
                  "the ratio of the two cells' p50s (\"unresolved\" with why where either cell is unstable). "
                  "Cells measured more than an hour apart from the run that measured most cells are marked "
                  "\"another run\": they ran under another machine load, so compare them with care."),
            ("table", full_table(ctx.table))]
