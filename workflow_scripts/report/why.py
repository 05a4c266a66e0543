"""The report's "Why: profiles" section: launch overhead, kernel categories, top kernels (or, on CPU, top
operators) per engine, and a generated "why" paragraph per engine against the baseline engine."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from workflow_scripts.profiling.kernels import CATEGORIES  # noqa: E402
from workflow_scripts.report.context import ReportContext, cell_name  # noqa: E402
from workflow_scripts.report.figures import placeholder, save  # noqa: E402
from workflow_scripts.report.render import MISSING, fmt  # noqa: E402
from workflow_scripts.results import CELL_KEYS as CELL  # noqa: E402
from workflow_scripts.wording import count  # noqa: E402

TOP_PER_CELL = 5
# A profiled iteration this many times slower or faster than the same cell's timed p50 explains a different
# run than the one timed (profiler overhead, another compiled graph, another machine load): flagged in the report
PROFILE_GAP_RATIO = 1.5


def chosen_profiles(profiles: pd.DataFrame) -> pd.DataFrame:
    """One profile per cell: Nsight Systems when it produced one (no profiler in the process), else PyTorch's."""
    ok = profiles[profiles.status == "ok"].copy()
    if ok.empty:
        return ok
    ok["preference"] = ok.tool.map({"nsys": 0, "torch": 1})
    return ok.sort_values("preference").drop_duplicates(CELL).drop(columns="preference").sort_values(CELL)


def has_gpu_work(chosen: pd.DataFrame) -> bool:
    """Whether the chosen profiles saw GPU work (False on a CPU run)."""
    return bool(len(chosen)) and chosen.gpu_busy_ms_per_iter.notna().any()


GPU_COLUMNS = ["gpu_busy_ms_per_iter", "gpu_busy_fraction", "kernels_per_iter", "kernel_launches_per_iter",
               "graph_launches_per_iter", "cuda_api_ms_per_iter"]


def overhead_table(chosen: pd.DataFrame) -> pd.DataFrame:
    """Per profiled cell: wall and GPU-busy ms per iteration, kernels and launches per iteration, CUDA API
    time, ATen operator calls (GPU columns dropped on a CPU run)."""
    columns = {"engine": "engine", "precision": "precision", "batch_size": "batch", "seq_len": "seq",
               "padding": "padding", "tool": "profiler",
               "wall_ms_per_iter": "wall ms/iter", "gpu_busy_ms_per_iter": "GPU busy ms/iter",
               "gpu_busy_fraction": "GPU busy", "kernels_per_iter": "kernels/iter",
               "kernel_launches_per_iter": "kernel launches/iter", "graph_launches_per_iter": "graph launches/iter",
               "cuda_api_ms_per_iter": "CUDA API ms/iter", "cpu_ops_per_iter": "ATen ops/iter"}
    out = chosen[[c for c in columns if c in chosen]].copy()
    if not has_gpu_work(chosen):  # a CPU run: the GPU columns would be zeros that mean "not measured"
        out = out.drop(columns=[c for c in GPU_COLUMNS if c in out])
    if "gpu_busy_fraction" in out:
        out["gpu_busy_fraction"] = out.gpu_busy_fraction.map(lambda v: "" if pd.isna(v) else f"{v:.0%}")
    out = out.dropna(axis=1, how="all")
    for column in out.columns.intersection(["wall_ms_per_iter", "gpu_busy_ms_per_iter", "cuda_api_ms_per_iter"]):
        out[column] = out[column].map(fmt("ms"))
    for column in out.columns.intersection(["kernels_per_iter", "kernel_launches_per_iter", "graph_launches_per_iter",
                                            "cpu_ops_per_iter"]):  # counts per iteration: 704, not 704.0
        out[column] = out[column].map(lambda v: "" if pd.isna(v) else f"{v:,.0f}" if v == int(v) else f"{v:,.1f}")
    return out.rename(columns=columns)


def top_table(chosen: pd.DataFrame, tops: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The TOP_PER_CELL leading kernels (kind "kernel") or operators ("op") of each chosen profile."""
    keys = chosen[CELL + ["tool"]]
    rows = tops[(tops.kind == kind) & (tops["rank"] <= TOP_PER_CELL)].merge(keys, on=CELL + ["tool"])
    out = rows[CELL + ["rank", "name", "category", "ms_per_iter", "calls_per_iter", "mean_us", "time_fraction"]]
    out = out.assign(name=out.name.str.slice(0, 90)).dropna(axis=1, how="all")
    if "time_fraction" in out:
        out["time_fraction"] = out.time_fraction.map(lambda v: "" if pd.isna(v) else f"{v:.0%}")
    out = out.rename(columns={"batch_size": "batch", "seq_len": "seq", "ms_per_iter": "ms/iter",
                                                        "calls_per_iter": "calls/iter", "mean_us": "mean µs",
                                                        "time_fraction": "share of kernel time"})
    # one format per kind of number, as in every table: times in ms to 3 places, counts without a fraction
    # unless they have one (a call made every other iteration: 0.5)
    formats = {"ms/iter": fmt("ms"), "mean µs": fmt("s"), "calls/iter": lambda v: MISSING if pd.isna(v) else f"{v:g}"}
    return out.assign(**{column: out[column].map(formats[column]) for column in formats if column in out})


def plot_breakdown(chosen: pd.DataFrame, tops: pd.DataFrame):
    """Stacked horizontal bars, one per engine x precision x batch (named in full on one line: upright labels
    under vertical bars overlapped from five cells on): GPU time by kernel category, or on CPU the top
    operators."""
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.4 * len(chosen) + 1.5)))
    labels = [cell_name(r) for r in chosen.itertuples()]
    if has_gpu_work(chosen):
        parts = {name: chosen[f"{name}_ms_per_iter"].fillna(0).to_numpy() for name in CATEGORIES
                 if f"{name}_ms_per_iter" in chosen}
        xlabel = "GPU time per iteration (ms)"
    else:
        parts = cpu_op_parts(chosen, tops)
        xlabel = "self CPU time per iteration (ms, under the profiler)"
    left = [0.0] * len(chosen)
    for name, values in parts.items():
        ax.barh(range(len(labels)), values, left=left, label=legend_name(name))
        left = [b + v for b, v in zip(left, values)]
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()  # the table's order, top to bottom
    # beside the plot, not over a bar
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", labelsize=8)
    return fig


def legend_name(name: str, width: int = 40) -> str:
    """An operator or category name fit for a legend: a compiled graph's hashed name
    ("## Call CompiledFxGraph fricwu2... ##") reads as "compiled graph", anything else is cut to `width`."""
    if "CompiledFxGraph" in name:
        return "compiled graph (torch.compile)"
    name = name.strip("# ").strip()
    return name if len(name) <= width else name[:width - 1] + "…"


def cpu_op_parts(chosen: pd.DataFrame, tops: pd.DataFrame) -> dict:
    """The six leading operators over all chosen profiles -> their self CPU ms per iteration, per profile."""
    ops = tops[tops.kind == "op"].merge(chosen[CELL + ["tool"]], on=CELL + ["tool"])
    if ops.empty:
        return {}
    leading = ops.groupby("name").ms_per_iter.sum().astype(float).nlargest(6).index
    parts = {}
    for name in leading:
        values = []
        for row in chosen.itertuples():
            match = ops[(ops.name == name) & (ops.engine == row.engine) & (ops.precision == row.precision)
                        & (ops.batch_size == row.batch_size) & (ops.seq_len == row.seq_len)
                        & (ops.padding == row.padding)]
            values.append(float(match.ms_per_iter.sum()))
        parts[name] = values
    return parts


def why(row, base) -> str:
    """One sentence on what separates an engine from the baseline engine at the same cell."""
    where = f"At batch {row.batch_size} ({row.precision}, seq {row.seq_len}, {row.padding} padding), {row.engine}"
    if pd.notna(row.gpu_busy_ms_per_iter) and pd.notna(base.gpu_busy_ms_per_iter):
        graphs = (f"{_n(row.graph_launches_per_iter)} CUDA graph launch(es) and " if row.graph_launches_per_iter
                  else "")
        text = (f"{where} makes {graphs}{_n(row.kernel_launches_per_iter)} kernel launch(es) per request where "
                f"{base.engine} makes {_n(base.kernel_launches_per_iter)}; it runs {_n(row.kernels_per_iter)} kernels "
                f"instead of {_n(base.kernels_per_iter)}; GPU busy {row.gpu_busy_ms_per_iter:.3f} ms vs "
                f"{base.gpu_busy_ms_per_iter:.3f} ms per request")
        if pd.notna(row.gpu_busy_fraction) and pd.notna(base.gpu_busy_fraction):
            text += f" ({row.gpu_busy_fraction:.0%} vs {base.gpu_busy_fraction:.0%} of the wall time)"
        gemm_row, gemm_base = getattr(row, "GEMM_ms_per_iter", None), getattr(base, "GEMM_ms_per_iter", None)
        if pd.notna(gemm_row) and pd.notna(gemm_base):
            text += f"; GEMM time {gemm_row:.3f} vs {gemm_base:.3f} ms"
        return text + "."
    return (f"{where} runs {_n(row.cpu_ops_per_iter)} ATen operator calls per request where {base.engine} runs "
            f"{_n(base.cpu_ops_per_iter)}; {row.wall_ms_per_iter:.3f} vs {base.wall_ms_per_iter:.3f} ms per request "
            "under the PyTorch profiler.")


def _n(value) -> str:
    return "?" if pd.isna(value) else f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def why_paragraphs(chosen: pd.DataFrame, baseline: dict, table: pd.DataFrame | None = None) -> list[str]:
    """why() for every profiled cell not of the baseline engine, against the baseline engine's profile of
    the same batch, sequence length and padding (same precision if profiled, else the baseline's). With the
    timed cells (`table`), a sentence whose profiles differ from their timed cells (profile_gaps) says that
    its times do not stand for the timed cells (its counts still do)."""
    gapped = {line.split(": ")[1] for line in profile_gaps(chosen, table)} if table is not None else set()
    lines = []
    for row in chosen.itertuples():
        if row.engine == baseline["engine"]:
            continue
        same = chosen[(chosen.engine == baseline["engine"]) & (chosen.batch_size == row.batch_size)
                      & (chosen.seq_len == row.seq_len) & (chosen.padding == row.padding)]
        match = same[same.precision == row.precision]
        base = (match if len(match) else same[same.precision == baseline["precision"]])
        if len(base):
            base_row = next(base.itertuples())
            line = why(row, base_row)
            off = [name for name in (_name(row), _name(base_row)) if name in gapped]
            if off:
                line += (f" Read these times with care: the profile of {' and of '.join(off)} differs from its "
                         "timed cell by more than " f"{PROFILE_GAP_RATIO}× (PROFILE ≠ TIMING); its counts still hold.")
            lines.append(line)
    return lines


def _name(row) -> str:
    """A profiled cell as profile_gaps names it."""
    return f"{row.engine} {row.precision} bs{row.batch_size} seq{row.seq_len} {row.padding}"


def profile_gaps(chosen: pd.DataFrame, table: pd.DataFrame, ratio: float = PROFILE_GAP_RATIO) -> list[str]:
    """One note per profiled cell whose wall ms per iteration under the profiler differs from the same cell's
    timed p50 (ms per batch) by more than `ratio` times either way.

    chosen: chosen_profiles(); table: cells.csv rows with p50_ms (only timed cells match)."""
    if "p50_ms" not in table or "wall_ms_per_iter" not in chosen:
        return []
    timed = table[table.p50_ms.notna()][CELL + ["p50_ms"]].drop_duplicates(CELL)
    both = chosen[chosen.wall_ms_per_iter.notna()].merge(timed, on=CELL)
    gap = both.wall_ms_per_iter / both.p50_ms
    return [f"PROFILE ≠ TIMING: {_name(r)}: "
            f"{r.wall_ms_per_iter:.3f} ms per iteration under the {r.tool} profiler vs a timed p50 of "
            f"{r.p50_ms:.3f} ms ({g:.2f}×); read its breakdown with care"
            for r, g in zip(both.itertuples(), gap) if g > ratio or g < 1 / ratio]


def skipped_notes(profiles: pd.DataFrame) -> list[str]:
    """One note per tool, status and reason of the profiles that produced no numbers."""
    notes = []
    bad = profiles[profiles.status != "ok"]
    for (tool, status, reason), group in bad.groupby(["tool", "status", bad.reason.fillna("")]):
        notes.append(f"{tool} profiles {status} for {count(len(group), 'cell')}: {reason}")
    return notes


def blocks(ctx: ReportContext) -> list[tuple]:
    """Draws kernel_breakdown where a profile produced numbers (declared only where the run profiles); the
    "Why: profiles" section's blocks."""
    profiles, tops, baseline, chosen = ctx.profiles, ctx.profile_tops, ctx.baseline, ctx.chosen_profiles
    path = ctx.figure_paths.get("kernel_breakdown")
    if chosen.empty:
        placeholder(path, "no profile produced numbers")
    elif path:
        save(plot_breakdown(chosen, tops), path)
    blocks = [("h2", "Why: profiles"),
              ("p", "Profiles come from jobs of their own, never from timing jobs. Each cell's numbers come from "
                    "Nsight Systems when it ran (kernels inside CUDA graphs traced one by one), else from the "
                    "PyTorch profiler, whose own overhead inflates wall times (counts stay exact). Per iteration = "
                    "per request of one batch.")]
    if len(profiles) == 0:
        return blocks + [("p", "No cell was profiled (config `profiling`).")]
    notes = skipped_notes(profiles)
    if notes:
        blocks.append(("p", "Not profiled: " + "; ".join(notes) + "."))
    if chosen.empty:
        return blocks
    gpu = has_gpu_work(chosen)
    blocks += [("h3", "Launch overhead"),
               ("p", "GPU busy: kernel and copy time per request; kernel launches: launch API calls per request "
                     "(what CUDA graphs remove at small batches); graph launches: whole CUDA graphs replayed."
                     if gpu else "No GPU work was profiled (CPU run): operator counts and times per request."),
               ("table", overhead_table(chosen))]
    gaps = profile_gaps(chosen, ctx.table)
    if gaps:
        blocks.append(("warnings", gaps))
    if path:
        blocks.append(("figure", "kernel_breakdown", "GPU time per request by kernel category" if gpu
                       else "self CPU time per request of the leading operators (under the profiler)"))
    blocks += [("h3", "Top kernels" if gpu else "Top operators"),
               ("table", top_table(chosen, tops, "kernel" if gpu else "op"))]
    lines = why_paragraphs(chosen, baseline, ctx.table)
    if lines:
        blocks += [("h3", f"Why, against {baseline['engine']}")] + [("p", line) for line in lines]
    return blocks
