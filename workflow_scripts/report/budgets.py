"""The report's answer to "what do I deploy for this latency budget?": per precision, the latency–throughput
Pareto frontier of this machine's cells and served load levels (a figure), and per budget in
`report.latency_budgets_ms` the configuration with the most samples/s whose latency (p99 or p50, as
`report.budget_percentile` says) fits in it.

Only `ok` cells whose repeat medians agree (report.targets.max_repeat_cv) can win; an unstable or mismatching
cell that would have won is named beside the winner instead, never chosen silently.
"""

import pandas as pd

from workflow_scripts.report.context import ReportContext, machine_key
from workflow_scripts.report.figures import legend_outside, placeholder, plain_log_axis, plt, save
from workflow_scripts.report.render import fmt, missing
from workflow_scripts.results import TIMED_STATUSES

# Columns of a candidate: one in-process cell or one served load level
CANDIDATE_COLUMNS = ["engine", "precision", "seq_len", "padding", "setting", "latency_ms", "samples_per_s",
                     "energy_j_per_1k_inferences", "status", "trusted", "why_not"]


def candidates(table: pd.DataFrame, serving: pd.DataFrame, percentile: str, max_repeat_cv: dict) -> pd.DataFrame:
    """Every timed cell and served load level as one row of CANDIDATE_COLUMNS.

    table: cells.csv rows (one machine); serving: serving.csv rows (one machine, may be empty);
    percentile: "p50" | "p99", the latency column a budget is held against (ms); max_repeat_cv: device ->
    the repeat-median CV above which an ok row is unstable. setting: "bs<N>" in-process, "concurrency <N>"
    served; energy_j_per_1k_inferences: GPU joules per 1,000 inferences where measured (else NaN); trusted: ok
    and stable; why_not: for an untrusted row, why it cannot win ("mismatch", "unstable (CV 3.1%)").
    """
    parts = []
    for frame, setting in ((table, lambda r: f"bs{r.batch_size}"),
                           (serving, lambda r: f"concurrency {r.concurrency}")):
        if frame is None or frame.empty:
            continue
        timed = frame[frame.status.isin(TIMED_STATUSES) & frame[f"{percentile}_ms"].notna()]
        if timed.empty:
            continue
        cv = timed.repeat_p50_cv if "repeat_p50_cv" in timed else pd.Series(float("nan"), index=timed.index)
        unstable = cv > timed.device.map(max_repeat_cv)
        why_not = [status if status != "ok" else f"unstable (CV {c:.1%})" if bad else ""
                   for status, c, bad in zip(timed.status, cv, unstable)]
        parts.append(pd.DataFrame({
            "engine": timed.engine, "precision": timed.precision, "seq_len": timed.seq_len,
            "padding": timed.padding if "padding" in timed else "",
            "setting": [setting(r) for r in timed.itertuples()],
            "latency_ms": timed[f"{percentile}_ms"], "samples_per_s": timed.throughput_samples_per_s,
            "energy_j_per_1k_inferences": timed.get("energy_j_per_1k_inferences", float("nan")),
            "status": timed.status, "trusted": [not w for w in why_not], "why_not": why_not}))
    if not parts:
        return pd.DataFrame(columns=CANDIDATE_COLUMNS)
    return pd.concat(parts, ignore_index=True)[CANDIDATE_COLUMNS]


def pareto_frontier(points: pd.DataFrame) -> pd.DataFrame:
    """The rows no other row beats on both latency (lower) and samples/s (higher), by ascending latency.

    points: rows with latency_ms and samples_per_s (one precision's trusted candidates, typically)."""
    frontier, best = [], float("-inf")
    for index, row in points.sort_values(["latency_ms", "samples_per_s"], ascending=[True, False]).iterrows():
        if row.samples_per_s > best:
            frontier.append(index)
            best = row.samples_per_s
    return points.loc[frontier]


def recommend(points: pd.DataFrame, budgets_ms: list[float]) -> pd.DataFrame:
    """Per budget (ms), the trusted candidate with the most samples/s whose latency_ms fits in it.

    Columns: budget ms, engine, precision, setting, seq_len, padding, latency ms, samples/s, J per 1k inferences, passed over
    (an untrusted candidate that fits and is faster than the winner, with why it cannot win). A budget without a
    winner says why in `engine`: "nothing trusted fits" where only untrusted candidates fit (named under passed
    over), "nothing fits (lowest latency <ms> ms)" where no candidate's latency is within it at all."""
    rows = []
    lowest = f"nothing fits (lowest latency {points.latency_ms.min():.3f} ms)" if len(points) else "nothing measured"
    for budget in budgets_ms:
        fits = points[points.latency_ms <= budget]
        trusted = fits[fits.trusted]
        win = trusted.loc[trusted.samples_per_s.idxmax()] if len(trusted) else None
        no_winner = "nothing trusted fits" if len(fits) else lowest
        beaten = fits[~fits.trusted & (fits.samples_per_s > (win.samples_per_s if win is not None else -1))]
        passed = ", ".join(f"{r.engine} {r.precision} {r.setting} seq{r.seq_len} {r.padding} ({r.samples_per_s:,.0f}/s, "
                           f"{r.why_not})"
                           for r in beaten.sort_values("samples_per_s", ascending=False).itertuples())
        rows.append({"budget ms": budget,
                     "engine": win.engine if win is not None else no_winner,
                     "precision": win.precision if win is not None else "",
                     "setting": win.setting if win is not None else "",
                     "seq_len": win.seq_len if win is not None else "",
                     "padding": win.padding if win is not None else "",
                     "latency ms": win.latency_ms if win is not None else float("nan"),
                     "samples/s": win.samples_per_s if win is not None else float("nan"),
                     "J per 1k inferences": win.energy_j_per_1k_inferences if win is not None else float("nan"),
                     "passed over": passed})
    return pd.DataFrame(rows)


def plot_frontiers(points: pd.DataFrame, budgets_ms: list[float], percentile: str, path: str) -> None:
    """Every candidate (trusted filled, untrusted hollow), each precision's frontier of trusted candidates as
    a line, the budgets as vertical lines; log-log."""
    fig, ax = plt.subplots(figsize=(9.5, 5))
    for number, (precision, group) in enumerate(points.groupby("precision")):
        color = f"C{number}"
        trusted = group[group.trusted]
        ax.scatter(trusted.latency_ms, trusted.samples_per_s, color=color, s=14, alpha=0.5)
        ax.scatter(group[~group.trusted].latency_ms, group[~group.trusted].samples_per_s, facecolors="none",
                   edgecolors=color, s=22)
        front = pareto_frontier(trusted)
        ax.step(front.latency_ms, front.samples_per_s, where="post", color=color, marker="o",
                label=f"{precision} frontier")
    for budget in budgets_ms:
        ax.axvline(budget, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_axis(ax.xaxis)
    plain_log_axis(ax.yaxis)
    ax.set_xlabel(f"{percentile} latency per batch or request (ms)")
    ax.set_ylabel("throughput (samples/s)")
    ax.grid(True, which="both", alpha=0.3)
    if len(points):
        legend_outside(fig, ax)
    save(fig, path)


def blocks(ctx: ReportContext) -> list[tuple]:
    """Draws the frontier figure; the section's heading, how to read it and the per-budget table."""
    budgets, percentile = ctx.budgets["latency_ms"], ctx.budgets["percentile"]
    serving = ctx.serving
    if len(serving) and "gpu_name" in serving:
        serving = serving[machine_key(serving) == ctx.machine]
    points = candidates(ctx.table[machine_key(ctx.table) == ctx.machine], serving, percentile,
                        ctx.targets["max_repeat_cv"])
    if len(points):
        plot_frontiers(points, budgets, percentile, ctx.figure_paths["pareto"])
    else:
        placeholder(ctx.figure_paths.get("pareto"), f"no cell or load level with a {percentile} latency")
    table = recommend(points, budgets)
    # a winner without an energy reading (CPU, no NVML counter, a served level): the section on energy says why
    table["J per 1k inferences"] = [missing("not measured") if pd.isna(joules) and pd.notna(latency) else joules
                                    for joules, latency in zip(table["J per 1k inferences"], table["latency ms"])]
    for column, kind in (("latency ms", "ms"), ("samples/s", "rate"), ("J per 1k inferences", "rate")):
        table[column] = table[column].map(lambda v, kind=kind: v if isinstance(v, str) else fmt(kind)(v))
    return [("h2", "What to deploy for a latency budget"),
            ("p", f"Per budget (`report.latency_budgets_ms`), the engine, precision and batch size (in-process) or "
                  f"concurrency (served) with the most samples/s whose {percentile} latency fits, on "
                  f"{ctx.machine}. Only ok cells with agreeing repeats can win; a faster cell that is "
                  "mismatching or unstable is named under 'passed over'."),
            ("table", table),
            ("figure", "pareto", f"Latency ({percentile}) against throughput per precision: lines are the "
                                 "Pareto frontiers of trusted cells, hollow markers untrusted cells, dotted lines "
                                 "the budgets") if len(points) else
            ("p", f"No frontier figure: no cell or load level with a {percentile} latency.")]
