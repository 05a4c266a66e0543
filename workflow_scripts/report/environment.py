"""The report's environment table: where the cells ran (host, GPU and card, CPU, torch, git commit, Slurm
job), with how many cells ran on each."""

import pandas as pd

from workflow_scripts.report.context import ReportContext

COLUMNS = ["hostname", "gpu_name", "gpu_uuid", "cpu", "torch", "git_commit", "slurm_job_id"]


def environment_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct environment, with its number of cells first."""
    columns = [c for c in COLUMNS if c in table]
    # dropna=False: a run outside Slurm has no job id, and NaN never equals NaN
    env = table.groupby(columns, dropna=False, sort=False).size().rename("cells").reset_index()
    return env[["cells", *columns]]


def blocks(ctx: ReportContext) -> list[tuple]:
    """The environment heading and table."""
    return [("h2", "Environment"), ("table", environment_table(ctx.table))]
