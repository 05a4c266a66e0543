"""The report's correctness and accuracy table: each cell's measured batches against fp32 eager, and the
whole-split pass of its engine and precision."""

import pandas as pd

from workflow_scripts.report.context import ReportContext
from workflow_scripts.report.render import fmt
from workflow_scripts.results import CELL_KEYS

COLUMNS = [*CELL_KEYS, "status", "max_abs_diff", "agreement", "accuracy", "split_max_abs_diff", "split_agreement",
           "accuracy_status"]


# the formats of the all-cells table (render.NUMBER_FORMATS): differences in scientific notation, shares as %
FORMATS = {"max_abs_diff": "sci", "split_max_abs_diff": "sci", "agreement": "pct", "split_agreement": "pct",
           "accuracy": "pct"}


def correctness_table(table: pd.DataFrame) -> pd.DataFrame:
    """The COLUMNS the cells table has (the accuracy columns are absent when no whole-split pass ran),
    numbers formatted as everywhere in the report."""
    out = table[[c for c in COLUMNS if c in table]].copy()
    for column, kind in FORMATS.items():
        if column in out:
            out[column] = out[column].map(fmt(kind))
    return out


def blocks(ctx: ReportContext) -> list[tuple]:
    """The correctness heading, what its columns compare, and its table."""
    return [("h2", "Correctness and accuracy"),
            ("p", "max |diff| and agreement: the cell's measured batches against fp32 eager; accuracy and split "
                  "agreement: the whole split, once per engine and precision."),
            ("table", correctness_table(ctx.table))]
