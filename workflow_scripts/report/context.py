"""What every report section builds from: the run's tables and settings, read once, and the values
derived from them that several sections share (speedups, this run's machine, serving overhead, the
profile chosen per cell), each computed once on first use."""

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from workflow_scripts import pair_speedups, roofline
from workflow_scripts.report.render import fmt
from workflow_scripts.results import TIMED_STATUSES, read_json


def machine_key(table: pd.DataFrame) -> pd.Series:
    """Per row, the machine it was measured on: the GPU model, or "CPU: <cpu>" for CPU cells. Ratios and
    peaks only hold between rows of one machine (merged pieces may come from several)."""
    return table.gpu_name.fillna("CPU: " + table.cpu.astype(str))


def cell_name(row) -> str:
    """A cell as the report names it in sentences, every dimension included (`eager fp32 bs1 seq128
    dynamic`): two cells that differ only in padding or sequence length must never read as one.
    row: a cells.csv row (Series or itertuples row) with engine, precision, batch_size, seq_len, padding."""
    return f"{row.engine} {row.precision} bs{row.batch_size} seq{row.seq_len} {row.padding}"


def shows_tokens_per_batch(table: pd.DataFrame) -> bool:
    """Whether tables show `tokens_per_batch` (the padded tokens an average measured batch carries): where
    dynamic padding is in the sweep, cells of one batch size and seq_len carry different amounts of work."""
    return "tokens_per_batch" in table and bool((table.padding == "dynamic").any())


def with_speedup(table: pd.DataFrame, baseline: dict, max_repeat_cv: dict) -> pd.DataFrame:
    """The cells with `speedup` = baseline p50 / cell p50 at the same batch size, sequence length, padding
    and machine (NaN where the baseline has no timed cell there), and `speedup_unresolved`: why that ratio is
    no result ("" where it is one): either cell's p50 is not one steady number (pair_speedups.p50_unsteady),
    e.g. "baseline: repeat CV 41.1%". The baseline's own ratio is 1 by definition and never unresolved.

    table: the aggregate step's cells.csv; baseline: {"engine", "precision"} (config report.baseline);
    max_repeat_cv: device -> the repeat-median CV above which a cell is unstable (report.targets)."""
    keys = ["batch_size", "seq_len", "padding", "machine"]
    table = table.assign(machine=machine_key(table), unsteady=[
        ", ".join(pair_speedups.p50_unsteady(row, max_repeat_cv)) for row in table.itertuples()])
    is_base = (table.engine == baseline["engine"]) & (table.precision == baseline["precision"])
    base = table[is_base & table.status.isin(TIMED_STATUSES)][keys + ["p50_ms", "unsteady"]].rename(
        columns={"p50_ms": "base_p50", "unsteady": "base_unsteady"})
    merged = table.merge(base.drop_duplicates(keys), on=keys, how="left")
    merged["speedup"] = merged["base_p50"] / merged["p50_ms"]
    merged["speedup_unresolved"] = [
        "; ".join(f"{whose}: {why}" for whose, why in (("this cell", own), ("baseline", of_base)) if why)
        if pd.notna(ratio) and not own_base else ""
        for ratio, own, of_base, own_base in zip(merged.speedup, merged.unsteady, merged.base_unsteady.fillna(""),
                                                 is_base.to_numpy())]
    return merged.drop(columns=["base_p50", "base_unsteady", "unsteady", "machine"])


def p50_ratio_text(row) -> str:
    """A cell's p50-ratio speedup as the report shows it: "5.87×", or "unresolved (baseline: repeat CV 41.1%)"
    where either cell is unstable (with_speedup's speedup_unresolved); MISSING without a ratio."""
    reasons = getattr(row, "speedup_unresolved", "")
    if isinstance(reasons, str) and reasons and pd.notna(row.speedup):
        return f"unresolved ({reasons})"
    return fmt("x")(row.speedup)


@dataclass
class ReportContext:
    """One run's report inputs.

    table: cells.csv with `speedup` and `speedup_unresolved` (with_speedup); serving: serving.csv (one row per
    load level);
    profiles, profile_tops: profiles.csv and profile_tops.csv; peaks: calibration/peaks.json (None: absent);
    model_info: roofline.load_model_info(); dataset: dataset_info.json; model: inferbench_model.json;
    baseline: report.baseline; targets: report.targets; budgets: {"latency_ms": report.latency_budgets_ms,
    "percentile": report.budget_percentile}; comparison: the compare step's table against an earlier run
    (None: no `compare_with`); figure_paths: figure name -> PNG path to write; pairs: pairs.csv of the
    pair_table step (None: no pairs; the table then has NaN pair_* columns).
    """

    table: pd.DataFrame
    serving: pd.DataFrame = field(default_factory=pd.DataFrame)
    profiles: pd.DataFrame = field(default_factory=pd.DataFrame)
    profile_tops: pd.DataFrame = field(default_factory=pd.DataFrame)
    peaks: dict | None = None
    model_info: dict = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=lambda: {"engine": "eager", "precision": "fp32"})
    targets: dict = field(default_factory=dict)
    budgets: dict = field(default_factory=lambda: {"latency_ms": [1, 5, 20, 100], "percentile": "p99"})
    comparison: pd.DataFrame | None = None
    figure_paths: dict[str, str] = field(default_factory=dict)
    pairs: pd.DataFrame | None = None

    @cached_property
    def machine(self) -> str:
        """This run's machine: that of the first cell (merged pieces come after this run's cells)."""
        return machine_key(self.table).iloc[0]

    @cached_property
    def timed_here(self) -> pd.DataFrame:
        """The timed cells measured on this run's machine."""
        return self.table[(machine_key(self.table) == self.machine) & self.table.status.isin(TIMED_STATUSES)]

    @cached_property
    def serving_overhead(self) -> pd.DataFrame:
        """Per timed served cell: what serving costs over its in-process twin (serving.serving_overhead)."""
        from workflow_scripts.report.serving import serving_overhead

        return serving_overhead(self.table)

    @cached_property
    def chosen_profiles(self) -> pd.DataFrame:
        """One profile per profiled cell (why.chosen_profiles)."""
        from workflow_scripts.report.why import chosen_profiles

        return chosen_profiles(self.profiles)


def load(table: str, serving: str, profiles: str, profile_tops: str, peaks: str, dataset_info: str,
         model_dir: str, baseline: dict, targets: dict, budgets: dict, figure_paths: dict[str, str],
         comparison: str | None = None, pairs: str | None = None) -> ReportContext:
    """The context of a run from its files: the aggregate step's four CSVs, the calibration's peaks.json,
    the dataset step's dataset_info.json and the model step's folder; budgets as ReportContext.budgets;
    comparison: the compare step's CSV (None: no earlier run to compare with); pairs: the pair_table step's
    pairs.csv (the cells get their side-by-side speedups from it: pair_speedups.with_pair_speedups)."""
    pair_table = pd.read_csv(pairs) if pairs else None
    return ReportContext(
        table=pair_speedups.with_pair_speedups(with_speedup(pd.read_csv(table), baseline, targets["max_repeat_cv"]),
                                               pair_table, baseline),
        pairs=pair_table, serving=pd.read_csv(serving),
        profiles=pd.read_csv(profiles), profile_tops=pd.read_csv(profile_tops), peaks=read_json(peaks),
        model_info=roofline.load_model_info(model_dir), dataset=read_json(dataset_info),
        model=read_json(Path(model_dir) / "inferbench_model.json"), baseline=baseline, targets=targets,
        budgets=budgets, figure_paths=figure_paths,
        comparison=pd.read_csv(comparison) if comparison else None)
