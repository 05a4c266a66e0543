"""The report's "What changed since the earlier run" section (config `compare_with`): the compare step's
table, slower cells first, with how many cells got each verdict (cells only one run has among them). Absent
when no earlier run is named."""

import pandas as pd

from workflow_scripts.compare import ONLY_NEW, ONLY_OLD
from workflow_scripts.report.context import ReportContext
from workflow_scripts.report.render import fmt

# verdict -> order in the table (what needs attention first)
ORDER = {"slower": 0, "refused": 1, "faster": 2, "not timed": 3, ONLY_NEW: 4, ONLY_OLD: 5, "no change detectable": 6}


def shown(comparison: pd.DataFrame) -> pd.DataFrame:
    """The comparison sorted by verdict (ORDER), ratios formatted, the interval as one column."""
    rows = comparison.sort_values("verdict", key=lambda v: v.map(ORDER), kind="stable")
    return pd.DataFrame({
        "engine": rows.engine, "precision": rows.precision, "batch": rows.batch_size, "seq_len": rows.seq_len,
        "padding": rows.padding, "old p50 ms": rows["old p50 ms"].map(fmt("ms")),
        "new p50 ms": rows["new p50 ms"].map(fmt("ms")), "new/old": rows.ratio.map(fmt("ratio")),
        "interval": [f"{lo:.3f}–{hi:.3f}" if pd.notna(lo) else "" for lo, hi in
                     zip(rows["ratio low"], rows["ratio high"])],
        "verdict": rows.verdict, "reason": rows.reason.fillna(""),
    })


def blocks(ctx: ReportContext) -> list[tuple]:
    """Nothing without a comparison; else the heading, the counts per verdict and the table."""
    if ctx.comparison is None:
        return []
    comparison = ctx.comparison
    blocks = [("h2", "What changed since the earlier run")]
    if not (~comparison.verdict.isin([ONLY_NEW, ONLY_OLD])).any():
        blocks.append(("p", "No cell of this run was in the earlier run (engine, precision, batch size, sequence "
                            "length and padding must all match)."))
    if comparison.empty:
        return blocks
    counts = ", ".join(f"{n} {verdict}" for verdict, n in comparison.verdict.value_counts().items())
    return blocks + [
        ("p", f"Per cell in both runs, p50 new/old (above 1: slower now) with an interval from the two runs' "
              f"95% intervals (new low / old high to new high / old low; conservative). {counts}. Cells "
              "from another GPU model or CPU, model id or input geometry are refused, not compared; a cell that "
              "only one run has is listed as such, without a ratio."),
        ("table", shown(comparison))]
