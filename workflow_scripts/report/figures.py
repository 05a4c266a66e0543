"""The report's figures versus batch size (p50 latency, throughput, speedup), and the one way every
section saves a figure."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import LogFormatterSciNotation, NullLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from workflow_scripts.report.context import ReportContext, machine_key  # noqa: E402
from workflow_scripts.results import TIMED_STATUSES, atomic_write_bytes  # noqa: E402


def save(fig, path: str) -> None:
    """Write the figure as PNG (110 dpi) atomically and close it."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")  # a legend outside the axes included
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def plain_number(value: float) -> str:
    """A tick label as a reader writes the number: "0.5", "4", "300", "2,000"."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


class PlainLogFormatter(LogFormatterSciNotation):
    """Labels the ticks matplotlib's log formatter labels, as plain numbers ("4", "300") instead of "4×10^0"."""

    def __call__(self, value, pos=None):
        return plain_number(value) if super().__call__(value, pos) else ""


def plain_log_axis(axis) -> None:
    """A log-scaled matplotlib axis (ax.xaxis, ax.yaxis) labelled with plain numbers (PlainLogFormatter), decades
    and, where the axis spans few of them, the ticks in between."""
    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


def placeholder(path: str | None, why: str) -> None:
    """For a declared figure with nothing to draw in this run (every cell it would show failed): a PNG that
    says why, so that Snakemake finds its output; the report itself shows the sentence, not this image. Does
    nothing when the figure was not declared (path None)."""
    if path:
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"not drawn: {why}", ha="center", va="center", wrap=True, transform=ax.transAxes)
        save(fig, path)


def _series(table: pd.DataFrame):
    """(label, timed cells sorted by batch size) per engine, precision, sequence length and padding."""
    measured = table[table.status.isin(TIMED_STATUSES)]
    for (engine, precision, seq_len, padding), group in measured.groupby(["engine", "precision", "seq_len",
                                                                         "padding"]):
        yield f"{engine} {precision} seq{seq_len} {padding}", group.sort_values("batch_size")


def plot_versus_batch(table: pd.DataFrame, column: str, ylabel: str, path: str,
                      interval: tuple[str, str] | None = None) -> None:
    """One line per series of `column` against batch size, log-log; interval: the columns of its 95% CI's
    low and high ends, drawn as error bars. Ticks only at the measured batch sizes."""
    fig, ax = plt.subplots(figsize=(11, 5))
    for label, group in _series(table):
        if interval and interval[0] in group:
            low, high = group[column] - group[interval[0]], group[interval[1]] - group[column]
            ax.errorbar(group.batch_size, group[column], yerr=[low.clip(lower=0).fillna(0),
                                                               high.clip(lower=0).fillna(0)],
                        marker="o", capsize=3, label=label)
        else:
            ax.plot(group.batch_size, group[column], marker="o", label=label)
    ax.set_xscale("log", base=2)
    batches = sorted(table[table.status.isin(TIMED_STATUSES)].batch_size.unique())
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_yscale("log")
    plain_log_axis(ax.yaxis)
    ax.set_xlabel("batch size")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    legend_outside(fig, ax)
    save(fig, path)


def legend_outside(fig, ax) -> None:
    """The legend to the right of the axes, where it cannot cover a line or a marker (save keeps it in the
    picture)."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


# How the speedup figure draws each kind of bar: one statistic per bar style, said in the caption
SPEEDUP_STATISTICS = {"side by side": {"hatch": None}, "p50 ratio": {"hatch": "///"}}
UNRESOLVED = "unresolved"


def speedup_bars(table: pd.DataFrame) -> pd.DataFrame:
    """The speedup figure's bars, indexed by (label, batch_size), one per timed cell with a speedup over the
    baseline; label: engine, precision, seq_len, padding (and machine, where merged pieces come from several).
    Columns: statistic "side by side" where the run made that pair (speedup its median ratio, low and high its
    95% interval, x), else "p50 ratio" (the two cells' p50s; low and high NaN), or UNRESOLVED where that
    ratio is no result because either cell is unstable (context.with_speedup; speedup NaN); reason: why
    unresolved ("" otherwise). Each bar is one cell's: a table that would put two cells in one bar raises
    ValueError instead of averaging them (the two paddings once made one bar)."""
    pair = table.pair_speedup if "pair_speedup" in table else pd.Series(float("nan"), index=table.index)
    measured = table[table.status.isin(TIMED_STATUSES) & (table.speedup.notna() | pair.notna())]
    measured = measured.assign(machine=machine_key(measured), seq_len=measured.seq_len.map("seq{}".format))
    keys = ["engine", "precision", "seq_len", "padding"] + (["machine"] if measured.machine.nunique() > 1 else [])
    label = measured[keys].astype(str).agg(" ".join, axis=1)
    if label.empty:
        return pd.DataFrame(columns=["statistic", "speedup", "low", "high", "reason"],
                            index=pd.MultiIndex.from_arrays([[], []], names=["label", "batch_size"]))
    reason = (measured.speedup_unresolved.fillna("") if "speedup_unresolved" in measured
              else pd.Series("", index=measured.index))
    paired = pair.loc[measured.index].notna()
    statistic = paired.map({True: "side by side", False: "p50 ratio"}).where(paired | (reason == ""), UNRESOLVED)
    nan = float("nan")
    bars = pd.DataFrame({
        "label": label, "batch_size": measured.batch_size, "statistic": statistic,
        "speedup": measured.pair_speedup.where(paired, measured.speedup.where(reason == "")) if paired.any()
        else measured.speedup.where(reason == ""),
        "low": measured.pair_ci_low.where(paired) if paired.any() else nan,
        "high": measured.pair_ci_high.where(paired) if paired.any() else nan,
        "reason": reason.where(statistic == UNRESOLVED, "")})
    return bars.set_index(["label", "batch_size"], verify_integrity=True)


def plot_speedup(table: pd.DataFrame, baseline: dict, path: str) -> None:
    """Bars of speedup over the baseline per cell (speedup_bars), one colour per batch size: solid side by side
    with the pair's 95% interval as error bars, hatched a p50 ratio, the word "unresolved" where neither holds."""
    bars = speedup_bars(table)
    labels = list(dict.fromkeys(bars.index.get_level_values("label")))
    batches = sorted(set(bars.index.get_level_values("batch_size")))
    width = 0.8 / max(len(batches), 1)
    fig, ax = plt.subplots(figsize=(max(8, 0.5 * len(labels) * len(batches) + 3), 5.5))
    for number, batch in enumerate(batches):
        rows = bars.xs(batch, level="batch_size")
        x = pd.Series([labels.index(name) + (number - (len(batches) - 1) / 2) * width for name in rows.index],
                      index=rows.index)
        for statistic, style in SPEEDUP_STATISTICS.items():
            drawn = rows[rows.statistic == statistic]
            at, height = x[drawn.index].to_numpy(), drawn.speedup.to_numpy(float)
            ax.bar(at, height, width, color=f"C{number}", edgecolor="white", **style)
            if statistic == "side by side" and len(drawn):
                ax.errorbar(at, height, fmt="none", ecolor="black", capsize=3, linewidth=1,
                            yerr=np.vstack([height - drawn.low.to_numpy(float),
                                            drawn.high.to_numpy(float) - height]).clip(min=0))
        for name in rows.index[rows.statistic == UNRESOLVED]:
            ax.text(x[name], 0.02, UNRESOLVED, rotation=90, ha="center", va="bottom", fontsize=8, color=f"C{number}",
                    transform=ax.get_xaxis_transform())
    # labels on two lines, upright: rotated full names were cut off and crowded the bars out
    ax.set_xticks(range(len(labels)), [name.replace(" ", "\n", 1) for name in labels])
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.tick_params(axis="x", labelsize=8)
    ax.axhline(1.0, color="black", linewidth=0.8)
    tallest = pd.concat([bars.speedup, bars.high]).max()
    ax.set_ylim(0, 1.3 * (tallest if pd.notna(tallest) else 1.0))  # room for the legends above the bars
    ax.set_ylabel("speedup (×)")
    ax.set_title(f"speedup over {baseline['engine']} {baseline['precision']} at the same batch, seq and padding",
                 fontsize=10)
    styles = [Patch(facecolor="silver", edgecolor="white", label="side by side (95% interval)"),
              Patch(facecolor="silver", edgecolor="white", hatch="///", label="p50 ratio (no pair)")]
    ax.add_artist(ax.legend(handles=styles, fontsize=7, loc="upper left"))
    ax.legend(handles=[Patch(color=f"C{number}", label=str(batch)) for number, batch in enumerate(batches)],
              title="batch size", fontsize=7, loc="upper right")
    save(fig, path)


def blocks(ctx: ReportContext) -> list[tuple]:
    """Draws latency_vs_batch, throughput_vs_batch and speedup where they have cells to show; their section's
    blocks (a sentence saying why instead of a figure that would be empty)."""
    table, baseline, paths = ctx.table, ctx.baseline, ctx.figure_paths
    out = [("h2", "Latency and throughput versus batch size")]
    if not table.status.isin(TIMED_STATUSES).any():
        why = "no cell produced timings (see the warnings at the top)"
        for name in ("latency_vs_batch", "throughput_vs_batch", "speedup"):
            placeholder(paths.get(name), why)
        return out + [("p", f"No figures: {why}.")]
    plot_versus_batch(table, "p50_ms", "p50 latency per batch (ms)", paths["latency_vs_batch"],
                      interval=("p50_ci_low_ms", "p50_ci_high_ms"))
    # throughput from the same statistic as latency (p50): from the mean, one slow outlier made the fastest
    # engine in the headline the slowest in this figure
    plot_versus_batch(table.assign(p50_samples_per_s=table.batch_size / table.p50_ms * 1000), "p50_samples_per_s",
                      "throughput at the p50 (samples/s)", paths["throughput_vs_batch"])
    out += [("figure", "latency_vs_batch", "p50 latency per batch versus batch size (log-log; bars: the p50's "
                                           "95% CI)"),
            ("figure", "throughput_vs_batch", "throughput at the p50 latency (batch size / p50, samples/s) versus "
                                              "batch size (log-log)")]
    if speedup_bars(table).empty:
        why = f"the baseline {baseline['engine']} {baseline['precision']} has no timed cell to compare with"
        placeholder(paths.get("speedup"), why)
        return out + [("p", f"No speedup figure: {why}.")]
    plot_speedup(table, baseline, paths["speedup"])
    return out + [("figure", "speedup", f"speedup over {baseline['engine']} {baseline['precision']} at the same "
                                        "batch, seq and padding, one statistic per bar style: solid, side by side "
                                        "(both in one process; error bars: the pair's 95% interval); hatched, the "
                                        "ratio of the two cells' p50s where the run made no pair; \"unresolved\" "
                                        "where there is no pair and either cell is unstable")]
