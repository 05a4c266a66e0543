"""The report's "How these numbers were measured": this run's timing rule, calls per cell, warm-ups, when the
cells ran, and the host state the results recorded over their timed windows (GPU model and driver, SM clock
range, clock-event reasons, CPU steal, load average, threads and cores, library versions). Facts read from
the cells' results (aggregate columns), never the README's description of what should have happened."""

import pandas as pd

from workflow_scripts import pair_speedups
from workflow_scripts.report.context import ReportContext, machine_key
from workflow_scripts.wording import count, plural

# Clock-event reasons that are the card working as designed (host_state.OTHER_REASONS): shown as context
DESIGNED_REASONS = {"sw_power_cap": "power cap at full load, the card working as designed",
                    "gpu_idle": "idle between calls", "applications_clocks_setting": "application clocks set",
                    "sync_boost": "sync boost", "display_clock_setting": "display clock setting"}
NOT_RECORDED = "not recorded in these results"


def span(values: pd.Series, form: str = "{:g}", unit: str = "") -> str:
    """`low–high unit` of the values (one value once); NOT_RECORDED when none is known."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return NOT_RECORDED
    low, high = form.format(values.min()), form.format(values.max())
    return (low if low == high else f"{low}–{high}") + (f" {unit}" if unit else "")


def distinct(values: pd.Series) -> str:
    """The distinct known values, `, `-joined (with each one's cell count when there are several)."""
    counts = values.dropna().astype(str).value_counts()
    if counts.empty:
        return NOT_RECORDED
    if len(counts) == 1:
        return counts.index[0]
    return ", ".join(f"{value} ({count(number, 'cell')})" for value, number in counts.items())


def timing_rule(row) -> str | None:
    """The warm-up and timing rule of one cell's measurement_* columns, in words (None: not recorded)."""
    get = lambda key: getattr(row, f"measurement_{key}", None)  # noqa: E731
    if get("windows") is None or pd.isna(get("windows")):
        return None
    return (f"warm-up: every input batch once, then windows until at least {get('warmup_seconds'):g} s have passed "
            f"and the last {count(get('stable_windows'), 'window median')} agree within "
            f"{get('stable_tolerance'):.0%} (at most {get('warmup_max_seconds'):g} s, else the cell is flagged); "
            f"then {count(get('repeats'), 'repeat')} × {count(get('windows'), 'window')}, each at least "
            f"{get('window_seconds'):g} s and {count(get('min_window_iters'), 'call')}; p50 = the median of the "
            "window medians")


def clock_reasons(cells: pd.DataFrame) -> str:
    """Every clock-event reason the cells saw, with how many cells and what it means."""
    if "clock_event_reasons" not in cells or cells.clock_event_reasons.isna().all():
        return NOT_RECORDED if cells.device.eq("cuda").any() else "n/a (no GPU)"
    seen = cells.clock_event_reasons.fillna("").str.split("; ").explode()
    seen = seen[seen != ""]
    if seen.empty:
        return "none in any cell"
    parts = []
    for reason, number in seen.value_counts().items():
        meaning = DESIGNED_REASONS.get(reason, "a thermal or hardware slowdown: the cell is flagged THROTTLED")
        parts.append(f"{reason} in {count(number, 'cell')} ({meaning})")
    return "; ".join(parts)


def warmup_row(steady: pd.Series, seconds: pd.Series, cap: pd.Series) -> str:
    """How the warm-ups ended, settled and capped cells apart: a capped warm-up runs past the cap (checked only
    after the every-batch-once pass and after each window), so one range of both would read as broken.
    steady: per cell whether its warm-up settled (NaN: not recorded); seconds: its length (s); cap: the
    measurement_warmup_max_seconds it ran under (s). NOT_RECORDED when no cell recorded it."""
    steady = steady.dropna().astype(bool)
    if steady.empty:
        return NOT_RECORDED
    settled, capped = steady[steady].index, steady[~steady].index
    text = f"settled in {len(settled)} of {count(len(steady), 'cell')}" + (
        f", in {span(seconds[settled], '{:.1f}', 's')}" if len(settled) else "")
    if len(capped):
        limit = span(cap[capped], "{:g}", "s")
        text += (f"; {len(capped)} reached the {'' if limit == NOT_RECORDED else limit + ' '}cap, in "
                 f"{span(seconds[capped], '{:.1f}', 's')} (the cap is checked after the every-batch-once pass and "
                 "after each window, so a warm-up runs past it; named under NOT STEADY above)")
    return text


def facts(table: pd.DataFrame) -> pd.DataFrame:
    """Rows (what, this run) of how the timed cells of one machine were measured; missing columns (results made
    before they were recorded) read NOT_RECORDED."""
    def column(name: str) -> pd.Series:
        return table[name] if name in table else pd.Series(None, index=table.index, dtype=object)

    rules = pd.Series([timing_rule(row) for row in table.itertuples()], index=table.index, dtype=object)
    calls = pd.to_numeric(column("iterations"), errors="coerce")
    few = (" (with fewer than 100, p99 is close to the slowest call)" if calls.notna().any() and calls.min() < 100
           else "")
    steady = column("warmup_steady")
    stamps = pd.to_datetime(column("time_utc"), utc=True, errors="coerce").dropna()
    gpu = table.device.eq("cuda").any()
    pinned = pd.to_numeric(column("pinned_core"), errors="coerce").dropna()
    crowded = pair_speedups.overloaded(table)
    rows = [
        ("timing rule", distinct(rules)),
        ("timed calls per cell", span(calls, "{:.0f}") + few if calls.notna().any() else NOT_RECORDED),
        ("warm-up", warmup_row(steady, column("warmup_s"), column("measurement_warmup_max_seconds"))),
        ("when (UTC)", f"{stamps.min():%Y-%m-%d %H:%M} – {stamps.max():%Y-%m-%d %H:%M}" if len(stamps)
         else NOT_RECORDED),
        ("GPU and driver", (f"{distinct(column('gpu_name'))}, driver {distinct(column('gpu_driver'))}" if gpu
                            else "none: a CPU run")),
        ("SM clock over the timed windows", span(pd.concat([column("sm_clock_min_mhz"), column("sm_clock_max_mhz")]),
                                                 "{:.0f}", "MHz") if gpu else "n/a (no GPU)"),
        ("clock-event reasons", clock_reasons(table)),
        ("CPU", distinct(column("cpu")) + (f", {distinct(column('cpu_count'))} logical cores"
                                           if column("cpu_count").notna().any() else "")),
        ("cores and threads", f"CPU cores each job was allowed: {distinct('core(s) ' + column('cpu_affinity').dropna().astype(str))}, torch threads "
                              f"{distinct(column('torch_threads'))}; "
                              + (f"timing thread pinned to core {distinct(pinned.astype(int))} in "
                                 f"{count(len(pinned), 'cell')}"
                                 if len(pinned) else "timing thread not pinned")),
        ("CPU steal time (share of CPU time, per cell)", span(column("cpu_steal_share"), "{:.1%}")),
        ("load average (1 min, before and after each cell)",
         span(pd.concat([column("load_average_start"), column("load_average_end")]), "{:.2f}")
         + (f"; above the cores allowed in {len(crowded)} cell(s) (named under LOAD above)" if len(crowded) else "")),
        ("software", f"torch {distinct(column('torch'))}, transformers {distinct(column('transformers'))}"),
    ]
    return pd.DataFrame(rows, columns=["what", "this run"])


def blocks(ctx: ReportContext) -> list[tuple]:
    """The heading, the facts of this run's machine, and a note on cells measured elsewhere."""
    timed = ctx.timed_here
    out = [("h2", "How these numbers were measured")]
    if timed.empty:
        return out + [("p", f"No cell was timed on {ctx.machine}.")]
    whose = "cell's" if len(timed) == 1 else "cells'"
    out += [("p", f"From the {len(timed)} timed {whose} results on {ctx.machine}: the timing rule they were "
                  "measured with and what the host was doing over their timed windows (sampled between windows, "
                  "never inside one).")]
    out.append(("table", facts(timed)))
    elsewhere = ctx.table[machine_key(ctx.table) != ctx.machine]
    if len(elsewhere):
        out.append(("p", f"{count(len(elsewhere), 'cell')} {plural(len(elsewhere), 'comes')} from other machines "
                         "(see Environment)."))
    return out
