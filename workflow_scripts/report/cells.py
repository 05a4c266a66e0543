"""The report's "All cells" table: every cell with its latency statistics, throughput, speedup, stability,
first-call time, memory and correctness."""

import pandas as pd

from workflow_scripts.report.context import ReportContext, shows_tokens_per_batch
from workflow_scripts.report.render import fmt
from workflow_scripts.results import CELL_KEYS

# column -> number format (render.NUMBER_FORMATS; None: shown as is), in the table's order
COLUMNS = {**dict.fromkeys(CELL_KEYS), "tokens_per_batch": "rate", "status": None, "p50_ms": "ms", "p90_ms": "ms", "p99_ms": "ms",
           "mean_ms": "ms", "std_ms": "ms", "gpu_p50_ms": "ms", "throughput_samples_per_s": "rate", "speedup": "x",
           "repeat_p50_cv": "pct", "first_call_s": "s", "peak_gpu_mb": "rate", "max_abs_diff": "sci",
           "agreement": "pct"}


def full_table(table: pd.DataFrame) -> pd.DataFrame:
    """The COLUMNS the table has, formatted, with readable names for throughput, CV and first call;
    tokens per batch only where dynamic padding is in the sweep."""
    # throughput from the same statistic as the latency the report ranks by (p50), not the mean
    table = table.assign(throughput_samples_per_s=table.batch_size / table.p50_ms * 1000)
    shown = [c for c in COLUMNS if c in table and (c != "tokens_per_batch" or shows_tokens_per_batch(table))]
    out = table[shown].copy()
    for column, kind in COLUMNS.items():
        if kind and column in out:
            out[column] = out[column].map(fmt(kind))
    return out.rename(columns={"tokens_per_batch": "tokens/batch", "throughput_samples_per_s": "samples/s", "repeat_p50_cv": "repeat CV",
                               "first_call_s": "first call s"})


def blocks(ctx: ReportContext) -> list[tuple]:
    return [("h2", "All cells"), ("table", full_table(ctx.table))]
