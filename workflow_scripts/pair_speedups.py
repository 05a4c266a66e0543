"""The speedups the report states: from side-by-side pairs where they exist (cell p50 ratios beside them), and
why a comparison or a cell is not to be trusted (unstable pair, host regimes, unsteady warm-up, throttling,
steal time, a load above the cores allowed). Used by the report; plain pandas, no plotting."""

import pandas as pd

from workflow_scripts.placement import count_cores

PAIR_KEYS = ["engine", "precision", "batch_size", "seq_len", "padding"]


def with_pair_speedups(table: pd.DataFrame, pairs: pd.DataFrame, baseline: dict) -> pd.DataFrame:
    """The cells with pair_speedup, pair_ci_low, pair_ci_high (x) and pair_unstable (the reasons, '' when
    none) from the ok pairs against `baseline` measured on the cell's machine; NaN where there is no pair.

    table: cells.csv with `speedup`; pairs: pairs.csv (pair_table.py); baseline: report.baseline."""
    columns = {"speedup": "pair_speedup", "speedup_ci_low": "pair_ci_low", "speedup_ci_high": "pair_ci_high",
               "unstable": "pair_unstable"}
    if pairs is None or pairs.empty:
        return table.assign(**{name: float("nan") for name in columns.values()})
    ok = pairs[(pairs.status == "ok") & (pairs.baseline_engine == baseline["engine"])
               & (pairs.baseline_precision == baseline["precision"])]
    ok = ok.assign(machine=ok.gpu_name.fillna("CPU"), unstable=ok.unstable.fillna(""))
    cells = table.assign(machine=table.gpu_name.fillna("CPU"))
    merged = cells.merge(ok[PAIR_KEYS + ["machine", *columns]].rename(columns=columns).drop_duplicates(
        PAIR_KEYS + ["machine"]), on=PAIR_KEYS + ["machine"], how="left")
    return merged.drop(columns=["machine"])


def pair_speedup_text(row) -> str:
    """'10.21× [9.95–10.48]' for a cell with a pair, '' without; ', unstable' when the pair is."""
    if pd.isna(row.pair_speedup):
        return ""
    unstable = ", unstable" if isinstance(row.pair_unstable, str) and row.pair_unstable else ""
    return f"{row.pair_speedup:.2f}× [{row.pair_ci_low:.2f}–{row.pair_ci_high:.2f}]{unstable}"


def p50_unsteady(row, max_repeat_cv: dict) -> list[str]:
    """Why one cell's p50 is not one steady number, so that a ratio of p50s with it resolves nothing: its repeat
    medians spread more than max_repeat_cv of its device (a CV, e.g. {"cpu": 0.05}), or its window medians fell
    into two host regimes. [] for a steady cell; columns absent from older results count as steady."""
    reasons = []
    cv = getattr(row, "repeat_p50_cv", float("nan"))
    if pd.notna(cv) and cv > max_repeat_cv.get(row.device, float("inf")):
        reasons.append(f"repeat CV {cv:.1%}")
    if pd.notna(getattr(row, "regime_low_ms", float("nan"))):
        reasons.append(f"two host regimes, {row.regime_low_ms:.3f} and {row.regime_high_ms:.3f} ms")
    return reasons


def cell_caveats(row, max_repeat_cv: dict) -> list[str]:
    """Why one cell's timing is not one steady number: repeat spread, two host regimes (p50_unsteady), an
    unsteady warm-up, throttling, steal time (columns absent from older results count as fine)."""
    caveats = p50_unsteady(row, max_repeat_cv)
    if getattr(row, "warmup_steady", True) is False:
        caveats.append("warm-up not steady")
    if getattr(row, "throttled", False) is True:
        caveats.append("GPU throttled")
    if getattr(row, "steal_heavy", False) is True:
        caveats.append(f"CPU steal {row.cpu_steal_share:.1%}")
    return caveats


def comparison_caveats(cell, baseline_cell, max_repeat_cv: dict) -> list[str]:
    """Why the speedup of `cell` over `baseline_cell` (rows of the cells table; baseline_cell may be None) is
    not to be trusted. With a pair, the pair's own reasons; without, both cells' caveats."""
    if pd.notna(cell.pair_speedup):
        return [r for r in str(cell.pair_unstable or "").split("; ") if r]
    caveats = [f"{cell.engine} {cell.precision}: {c}" for c in cell_caveats(cell, max_repeat_cv)]
    if baseline_cell is not None:
        caveats += [f"baseline: {c}" for c in cell_caveats(baseline_cell, max_repeat_cv)]
    return caveats


def overloaded(table: pd.DataFrame) -> pd.DataFrame:
    """The cells whose 1-min load average, before or after timing (load_average_start, load_average_end), was
    above the number of cores the job was allowed (cpu_affinity, e.g. '0-1'), with load_max and allowed_cores
    added. Cells without either record are left out (results made before they were recorded)."""
    if not {"load_average_start", "load_average_end", "cpu_affinity"} <= set(table):
        return table.iloc[:0]
    recorded = table[table.cpu_affinity.notna()]
    load = recorded[["load_average_start", "load_average_end"]].apply(pd.to_numeric, errors="coerce").max(axis=1)
    cores = recorded.cpu_affinity.astype(str).map(count_cores)
    return recorded.assign(load_max=load, allowed_cores=cores)[load > cores]


def measurement_warnings(table: pd.DataFrame, pairs: pd.DataFrame | None) -> list[str]:
    """Report warnings on how cells and pairs were measured: host regimes, unsteady warm-ups, throttling,
    steal time, a load average above the cores allowed (overloaded), unstable pairs."""
    notes = []
    timed = table[table.status.isin(["ok", "mismatch"])]

    def names(rows, detail=lambda r: ""):  # every dimension: cells differing only in padding stay apart
        return ", ".join(f"{r.engine} {r.precision} bs{r.batch_size} seq{r.seq_len} {r.padding}{detail(r)}"
                         for r in rows.itertuples())

    if "regime_low_ms" in timed:
        split = timed[timed.regime_low_ms.notna()]
        if len(split):
            notes.append("REGIMES: window medians fell into two levels (the host switched regimes while timing); "
                         "p50 describes neither level: " + names(split, lambda r: f" ({r.regime_low_ms:.3f} / "
                                                                                  f"{r.regime_high_ms:.3f} ms)"))
    for column, value, text in (("warmup_steady", False, "NOT STEADY: warm-up reached its cap before windows "
                                                         "agreed; measured anyway"),
                                ("throttled", True, "THROTTLED: the GPU reported a throttling clock-event reason "
                                                    "while timing"),
                                ("steal_heavy", True, "STEAL: the hypervisor took a noticeable share of CPU time "
                                                      "while timing")):
        if column in timed:
            hit = timed[timed[column].astype(object) == value]
            if len(hit):
                notes.append(f"{text}: {names(hit)}")
    crowded = overloaded(timed)
    if len(crowded):
        notes.append("LOAD: the 1-min load average exceeded the CPU cores the job was allowed (other work wanted "
                     "those cores while timing): " + names(crowded, lambda r: f" (load {r.load_max:.2f} on "
                                                                              f"{r.allowed_cores} cores)"))
    if pairs is not None and len(pairs):
        unstable = pairs[(pairs.status == "ok") & pairs.unstable.fillna("").astype(bool)]
        if len(unstable):
            notes.append("UNSTABLE PAIRS: " + "; ".join(
                f"{r.engine} {r.precision} bs{r.batch_size} seq{r.seq_len} {r.padding} vs {r.baseline_engine} "
                f"{r.baseline_precision}: "
                f"{r.unstable}" for r in unstable.itertuples()))
    return notes
