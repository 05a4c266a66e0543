"""The report's "Energy per inference" section: per timed cell on this run's machine, the GPU's energy over
its timed windows (NVML's total-energy counter, read by the host-state monitor) as joules per 1,000
inferences and the average power; where nothing was measured (a CPU run, no counter), why."""

import pandas as pd

from workflow_scripts.report.context import ReportContext
from workflow_scripts.report.render import fmt
from workflow_scripts.wording import count

ENERGY_COLUMNS = ["energy_j_per_1k_inferences", "average_power_w", "energy_reason"]


def energy_table(table: pd.DataFrame) -> pd.DataFrame:
    """The timed cells with an energy reading, least energy per inference first: engine, precision, batch,
    seq_len, padding, J per 1k inferences (J), average W (W), samples/s."""
    if "energy_j_per_1k_inferences" not in table:
        table = table.assign(**dict.fromkeys(ENERGY_COLUMNS))
    measured = table[table.energy_j_per_1k_inferences.notna()].sort_values("energy_j_per_1k_inferences")
    return pd.DataFrame({
        "engine": measured.engine, "precision": measured.precision, "batch": measured.batch_size,
        "seq_len": measured.seq_len, "padding": measured.padding,
        "J per 1k inferences": measured.energy_j_per_1k_inferences.map(fmt("rate")),
        "average W": measured.average_power_w.map(fmt("rate")),
        "samples/s": measured.throughput_samples_per_s.map(fmt("rate"))})


def unmeasured_reasons(table: pd.DataFrame) -> list[str]:
    """Why the timed cells without a reading have none, each reason once with its count."""
    if "energy_reason" not in table:
        return ["this run's results hold no energy reading (measured before energy was recorded)"]
    missing = table[table.energy_j_per_1k_inferences.isna()]
    return [f"{reason} ({count(number, 'cell')})" for reason, number in
            missing.energy_reason.fillna("no reason recorded").value_counts().items()]


def blocks(ctx: ReportContext) -> list[tuple]:
    """The heading, what the numbers are, the table (when any cell was measured) and the reasons for the rest."""
    timed = ctx.timed_here
    shown = energy_table(timed)
    reasons = unmeasured_reasons(timed)
    out = [("h2", "Energy per inference"),
           ("p", f"The whole card's energy over each cell's timed windows on {ctx.machine} (NVML total-energy "
                 "counter, from just before the first timed window to just after the last), divided by the "
                 "inferences timed: joules per 1,000 inferences and average power. It includes idle power and "
                 "the host's share of time between calls, as a deployment pays it.")]
    if len(shown):
        out.append(("table", shown))
    if reasons:
        out.append(("p", ("Not measured: " if not len(shown) else "Cells without a reading: ") + "; ".join(reasons)
                    + "."))
    return out
