"""The report's environment table: where the cells ran (host, GPU and card, CPU, torch, git commit, Slurm
job), with how many cells ran on each."""

import pandas as pd

from workflow_scripts.report.context import ReportContext
from workflow_scripts.report.render import missing

COLUMNS = ["hostname", "gpu_name", "gpu_uuid", "cpu", "torch", "git_commit", "slurm_job_id"]


def environment_table(table: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct environment, with its number of cells first."""
    columns = [c for c in COLUMNS if c in table]
    # dropna=False: a run outside Slurm has no job id, and NaN never equals NaN
    env = table.groupby(columns, dropna=False, sort=False).size().rename("cells").reset_index()
    if "slurm_job_id" in env:  # read back from CSV as a float: 42.0
        env["slurm_job_id"] = env.slurm_job_id.map(lambda v: f"{v:.0f}" if isinstance(v, float) and v == v else v)
    # what an empty field means here, said in the table
    on_cpu = env.gpu_name.isna() if "gpu_name" in env else pd.Series(False, index=env.index)
    for column, reason in (("gpu_name", "CPU"), ("gpu_uuid", "CPU"), ("slurm_job_id", "not under Slurm")):
        if column in env:
            known = on_cpu if column != "slurm_job_id" else env[column].isna()
            env[column] = env[column].astype(object).where(~(env[column].isna() & known), missing(reason))
    return env[["cells", *columns]]


def blocks(ctx: ReportContext) -> list[tuple]:
    """The environment heading and table."""
    return [("h2", "Environment"), ("table", environment_table(ctx.table))]
