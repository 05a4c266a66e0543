"""Step 7: the report, results/report/report.md and a self-contained report.html (figures embedded).

Warnings come first (sample dataset, random weights, CPU run, mismatching or failed cells), then the
headline table in the original study's form, figures, the full tables and the environment.
"""

import argparse
import base64
import html
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from workflow_scripts import roofline  # noqa: E402
from workflow_scripts.profiling import explain  # noqa: E402
from workflow_scripts.results import atomic_write_bytes, atomic_write_text, read_json  # noqa: E402
from workflow_scripts.step_io import setup_logging, snakemake_log  # noqa: E402
from workflow_scripts.targets import default_targets, in_process_twin, summary_table  # noqa: E402

log = logging.getLogger("report")
FIGURES = ("latency_vs_batch", "throughput_vs_batch", "speedup", "throughput_vs_concurrency", "kernel_breakdown")
NUMBER_FORMATS = {"ms": "{:.3f}", "x": "{:.2f}×", "pct": "{:.1%}", "rate": "{:,.1f}", "s": "{:.1f}",
                  "sci": "{:.2e}"}


# ---------------------------------------------------------------- analysis
def with_speedup(table: pd.DataFrame, baseline: dict) -> pd.DataFrame:
    """Speedup = baseline p50 / cell p50 at the same batch size, sequence length, padding and machine."""
    # ratios only between cells measured on the same GPU model (merged pieces may come from several)
    table = table.assign(machine=table.gpu_name.fillna("CPU: " + table.cpu.astype(str)))
    keys = ["batch_size", "seq_len", "padding", "machine"]
    base = table[(table.engine == baseline["engine"]) & (table.precision == baseline["precision"])
                 & table.status.isin(["ok", "mismatch"])][keys + ["p50_ms"]].rename(columns={"p50_ms": "base_p50"})
    merged = table.merge(base.drop_duplicates(keys), on=keys, how="left")
    merged["speedup"] = merged["base_p50"] / merged["p50_ms"]
    return merged.drop(columns=["base_p50", "machine"])


def warnings_for(table: pd.DataFrame, dataset: dict, model: dict, max_repeat_cv: dict) -> list[str]:
    notes = []
    if dataset["origin"] == "sample":
        why = "the configuration asked for it" if not dataset.get("hub_error") else "the Hugging Face hub was unreachable"
        notes.append(f"DATASET: this run used the {dataset['rows']}-sentence SST-2-format sample bundled with "
                     f"inferbench ({why}), not {dataset['name']}/{dataset['config']} {dataset['split']}. "
                     "Accuracy figures are not comparable with published SST-2 numbers.")
    wrapped = sorted(size for size in set(table.batch_size) if size > dataset["rows"])
    if wrapped:  # batch_rows wraps around: a batch larger than the dataset repeats rows
        notes.append(f"BATCHES REPEAT ROWS: the dataset has {dataset['rows']} rows, fewer than batch size(s) "
                     f"{', '.join(map(str, wrapped))}: those batches start again at row 0 (correctness is still "
                     "checked row by row; with dynamic padding the batch shapes are those of the repeated rows).")
    for warning in model.get("warnings", []):
        notes.append(f"MODEL: {warning}")
    devices = sorted(set(table.device))
    if devices == ["cpu"]:
        notes.append("CPU RUN: no GPU was used; latencies describe this CPU, not a GPU.")
    for status, meaning in (("mismatch", "outputs differ from fp32 eager beyond tolerance: their speed "
                                         "cannot be trusted"),
                            ("failed", "crashed"), ("oom", "ran out of memory"), ("skipped", "could not run here")):
        bad = table[table.status == status]
        for reason, group in bad.groupby(bad.reason.fillna("")):
            cells = ", ".join(f"{r.engine}/{r.precision}/bs{r.batch_size}/seq{r.seq_len}/{r.padding}"
                              for r in group.itertuples())
            notes.append(f"{status.upper()}: {len(group)} cell(s) {meaning}: {reason} ({cells})")
    ok = table[table.status == "ok"]
    unstable = ok[ok.repeat_p50_cv > ok.device.map(max_repeat_cv)]
    if len(unstable):
        cells = ", ".join(f"{r.engine}/{r.precision}/bs{r.batch_size} ({r.repeat_p50_cv:.1%})"
                          for r in unstable.itertuples())
        notes.append(f"UNSTABLE: repeat medians spread more than {max_repeat_cv[devices[0]]:.0%} (CV) in: {cells}")
    return notes


def headline(table: pd.DataFrame) -> pd.DataFrame:
    smallest = table.batch_size.min()
    rows = table[(table.batch_size == smallest)].sort_values("p50_ms", na_position="last")
    out = pd.DataFrame({
        "engine": rows.engine, "precision": rows.precision, "seq_len": rows.seq_len, "padding": rows.padding,
        f"p50 ms (bs{smallest})": rows.p50_ms.map(_fmt("ms")),
        "95% CI of p50": [f"{lo:.3f}–{hi:.3f}" if pd.notna(lo) else "" for lo, hi in
                          zip(rows.p50_ci_low_ms, rows.p50_ci_high_ms)],
        "speedup": rows.speedup.map(_fmt("x")),
        "accuracy": rows.accuracy.map(_fmt("pct")) if "accuracy" in rows else "",
        "status": rows.status,
    })
    return out


def full_table(table: pd.DataFrame) -> pd.DataFrame:
    columns = {"engine": None, "precision": None, "batch_size": None, "seq_len": None, "padding": None,
               "status": None, "p50_ms": "ms", "p90_ms": "ms", "p99_ms": "ms", "mean_ms": "ms", "std_ms": "ms",
               "gpu_p50_ms": "ms", "throughput_samples_per_s": "rate", "speedup": "x", "repeat_p50_cv": "pct",
               "first_call_s": "s", "peak_gpu_mb": "rate", "max_abs_diff": "sci", "agreement": "pct"}
    out = table[[c for c in columns if c in table]].copy()
    for column, kind in columns.items():
        if kind and column in out:
            out[column] = out[column].map(_fmt(kind))
    return out.rename(columns={"throughput_samples_per_s": "samples/s", "repeat_p50_cv": "repeat CV",
                               "first_call_s": "first call s"})


def _fmt(kind: str):
    return lambda value: "" if pd.isna(value) else NUMBER_FORMATS[kind].format(value)


SERVER_PHASES = ("queue", "compute_input", "compute_infer", "compute_output")


def latency_split(rows: pd.DataFrame) -> pd.DataFrame:
    """Where each served millisecond goes (ms per request), one row per served cell or load level: client,
    network+serialisation, their sum, queue, compute input, compute infer, compute output.

    perf_analyzer's own split where it was the client (the same requests as its latencies; its client part is
    its send and receive, its network part includes the server's own send/receive). With the Python client the
    phases come from the server's statistics over the timed window, and client+network is the client's mean
    minus them: the Python client cannot time its own part apart from the network's, so those two stay empty.
    """
    def column(name: str) -> pd.Series:
        return rows[name].astype(float) if name in rows else pd.Series(float("nan"), index=rows.index)

    out = pd.DataFrame(index=rows.index)
    out["client ms"] = column("split_client_ms")
    out["network+serialisation ms"] = column("split_network_ms")
    for phase in SERVER_PHASES:
        out[f"{phase.replace('_', ' ')} ms"] = column(f"split_{phase}_ms").fillna(column(f"server_{phase}_ms"))
    server_ms = sum(out[f"{phase.replace('_', ' ')} ms"] for phase in SERVER_PHASES)
    out.insert(2, "client+network ms", column("split_client_and_network_ms").fillna(column("mean_ms") - server_ms))
    return out


def serving_overhead(table: pd.DataFrame) -> pd.DataFrame:
    """Served p50 minus the same model in-process (its twin engine) at the same cell, per served cell, with
    the served latency's split (latency_split)."""
    served = table[table.served.astype(bool) & table.status.isin(["ok", "mismatch"])]
    rows = []
    for row in served.itertuples():
        twin = row.twin
        match = in_process_twin(table, twin, row.precision, row.batch_size, row.seq_len, row.padding)
        in_process = match.p50_ms.iloc[0] if len(match) else float("nan")
        rows.append({
            "served engine": row.engine, "precision": row.precision, "batch_size": row.batch_size,
            "seq_len": row.seq_len, "client": getattr(row, "client", None), "served p50 ms": row.p50_ms,
            "in-process engine": twin, "in-process p50 ms": in_process, "overhead ms": row.p50_ms - in_process,
            "served mean ms": row.mean_ms,
        })
    out = pd.DataFrame(rows)
    if len(out):
        out = pd.concat([out, latency_split(served).reset_index(drop=True)], axis=1)
    return out.round(3) if len(out) else out


def concurrency_table(serving: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Each load level: requests/s and its share of the same model in-process at a batch of that many rows
    (where that cell was measured), the server's mean batch, and the split of a request's latency."""
    rows = []
    for level in serving.itertuples():
        twin = in_process_twin(table, level.twin, level.precision, level.concurrency, level.seq_len)
        in_process = twin.throughput_samples_per_s.iloc[0] if len(twin) else float("nan")
        rows.append({"engine": level.engine, "precision": level.precision, "seq_len": level.seq_len,
                     "concurrency": level.concurrency, "client": getattr(level, "client", None),
                     "status": level.status, "p50 ms": level.p50_ms, "p99 ms": level.p99_ms,
                     "requests/s": level.throughput_samples_per_s,
                     "in-process samples/s at that batch": in_process,
                     "share of in-process": level.throughput_samples_per_s / in_process,
                     "mean server batch": getattr(level, "server_mean_batch_per_execution", float("nan"))})
    out = pd.DataFrame(rows)
    if len(out):
        out = pd.concat([out, latency_split(serving.reset_index(drop=True))], axis=1)
    return out.round(3)


def plot_concurrency(serving: pd.DataFrame, path: str) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    measured = serving[serving.status == "ok"] if len(serving) else serving
    for (engine, precision, seq_len), group in (measured.groupby(["engine", "precision", "seq_len"])
                                                if len(measured) else []):
        group = group.sort_values("concurrency")
        ax.plot(group.concurrency, group.throughput_samples_per_s, marker="o", label=f"{engine} {precision} seq{seq_len}")
    if len(measured):
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no served engine in this sweep", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("concurrent clients (batch-1 requests, closed loop)")
    ax.set_ylabel("throughput (requests/s)")
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, path)


# ---------------------------------------------------------------- figures
def _series(table: pd.DataFrame):
    measured = table[table.status.isin(["ok", "mismatch"])]
    for (engine, precision, seq_len, padding), group in measured.groupby(["engine", "precision", "seq_len",
                                                                         "padding"]):
        yield f"{engine} {precision} seq{seq_len} {padding}", group.sort_values("batch_size")


def plot_versus_batch(table: pd.DataFrame, column: str, ylabel: str, path: str) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, group in _series(table):
        ax.plot(group.batch_size, group[column], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def plot_speedup(table: pd.DataFrame, baseline: dict, path: str) -> None:
    measured = table[table.status.isin(["ok", "mismatch"]) & table.speedup.notna()]
    pivot = measured.pivot_table(index=["engine", "precision"], columns="batch_size", values="speedup")
    fig, ax = plt.subplots(figsize=(8, 5))
    if not pivot.empty:
        pivot.index = [f"{e} {p}" for e, p in pivot.index]
        pivot.plot.bar(ax=ax)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel(f"speedup over {baseline['engine']} {baseline['precision']} (p50 ratio)")
    ax.legend(title="batch size", fontsize=7)
    _save(fig, path)


def _save(fig, path: str) -> None:
    import io

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


# ---------------------------------------------------------------- rendering
def markdown_table(frame: pd.DataFrame) -> str:
    cells = frame.map(lambda value: "" if value is None or (isinstance(value, float) and value != value)
                      else str(value))
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(v.replace("|", "\\|") for v in row) + " |" for row in cells.values.tolist()]
    return "\n".join(lines)


def render(blocks: list[tuple], figure_dir: Path, out_md: str, out_html: str) -> None:
    md, body = [], []
    for kind, *content in blocks:
        if kind == "h1":
            md.append(f"# {content[0]}")
            body.append(f"<h1>{html.escape(content[0])}</h1>")
        elif kind in ("h2", "h3"):
            md.append(f"{'#' * int(kind[1])} {content[0]}")
            body.append(f"<{kind}>{html.escape(content[0])}</{kind}>")
        elif kind == "p":
            md.append(content[0])
            body.append(f"<p>{html.escape(content[0])}</p>")
        elif kind == "warnings":
            md.append("\n".join(f"> **⚠ {w}**" for w in content[0]))
            body.append("".join(f'<p class="warn">⚠ {html.escape(w)}</p>' for w in content[0]))
        elif kind == "table":
            md.append(markdown_table(content[0]))
            body.append(content[0].to_html(index=False, na_rep="", border=0))
        elif kind == "figure":
            name, caption = content
            md.append(f"![{caption}](figures/{name}.png)\n\n*{caption}*")
            data = base64.b64encode((figure_dir / f"{name}.png").read_bytes()).decode()
            body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    atomic_write_text(out_md, "\n\n".join(md) + "\n")
    style = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
             ".warn{background:#fff3cd;border-left:5px solid #d39e00;padding:6px;font-weight:bold}"
             "img{max-width:100%}")
    atomic_write_text(out_html, f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>inferbench report"
                                f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def build(table_path: str, serving_path: str, profiles_path: str, profile_tops_path: str, peaks_path: str,
          dataset_info: str, model_dir: str, baseline: dict, targets: dict, out_md: str,
          out_html: str, figure_paths: dict[str, str]) -> list[str]:
    table = with_speedup(pd.read_csv(table_path), baseline)
    serving = pd.read_csv(serving_path)
    profiles, profile_tops = pd.read_csv(profiles_path), pd.read_csv(profile_tops_path)
    _save(explain.plot_breakdown(explain.chosen_profiles(profiles), profile_tops), figure_paths["kernel_breakdown"])
    plot_concurrency(serving, figure_paths["throughput_vs_concurrency"])
    dataset, model = read_json(dataset_info), read_json(Path(model_dir) / "inferbench_model.json")
    plot_versus_batch(table, "p50_ms", "p50 latency per batch (ms)", figure_paths["latency_vs_batch"])
    plot_versus_batch(table, "throughput_samples_per_s", "throughput (samples/s)",
                      figure_paths["throughput_vs_batch"])
    plot_speedup(table, baseline, figure_paths["speedup"])
    warnings = warnings_for(table, dataset, model, targets["max_repeat_cv"])
    peaks, model_info = read_json(peaks_path), roofline.load_model_info(model_dir)
    summary = summary_table(table, serving, peaks, model_info, baseline, targets, serving_overhead(table))
    env = table.iloc[0]
    machine = env.gpu_name if isinstance(env.gpu_name, str) else f"CPU: {env.cpu}"
    counts = ", ".join(f"{n} {s}" for s, n in table.status.value_counts().items())
    blocks = [
        ("h1", f"inferbench report: {model['model_id']} ({model['num_hidden_layers']} layers, hidden "
               f"{model['hidden_size']}) on {machine}"),
        ("warnings", warnings) if warnings else ("p", "No warnings."),
        ("p", f"{len(table)} cells ({counts}). Dataset: {dataset['origin']} ({dataset['rows']} sentences). "
              f"Model: {model['model_id']} ({model['weights']} weights, {model['num_parameters']:,} parameters). "
              f"Latency is the synchronised host wall time per batch; speedup is the p50 ratio against "
              f"{baseline['engine']} {baseline['precision']} at the same batch size."),
        ("h2", "Summary"),
        ("p", f"This run's answers on {machine}, each against `report.targets` (ratios only between cells of "
              "the same machine)."),
        ("table", summary),
        ("h2", "Headline: smallest batch"),
        ("table", headline(table)),
        ("h2", "Latency and throughput versus batch size"),
        ("figure", "latency_vs_batch", "p50 latency per batch versus batch size (log-log)"),
        ("figure", "throughput_vs_batch", "throughput (samples/s) versus batch size"),
        ("figure", "speedup", f"speedup over {baseline['engine']} {baseline['precision']}"),
        *serving_blocks(table, serving),
        *explain.profile_blocks(profiles, profile_tops, baseline),
        *roofline.roofline_blocks(table, peaks, model_info),
        ("h2", "All cells"),
        ("table", full_table(table)),
        ("h2", "Correctness and accuracy"),
        ("p", "max |diff| and agreement: the cell's measured batches against fp32 eager; accuracy and split "
              "agreement: the whole split, once per engine and precision."),
        ("table", correctness_table(table)),
        ("h2", "Environment"),
        ("table", environment_table(table)),
    ]
    render(blocks, Path(figure_paths["latency_vs_batch"]).parent, out_md, out_html)
    return warnings


def serving_blocks(table: pd.DataFrame, serving: pd.DataFrame) -> list[tuple]:
    served = table[table.served.astype(bool)]
    if served.empty:
        return []
    twins = "; ".join(f"{engine}: {twin}" for engine, twin in
                      served[["engine", "twin"]].drop_duplicates().itertuples(index=False))
    blocks = [("h2", "Serving"),
              ("p", f"What serving costs on top of running the same model in-process ({twins}), and where each "
                    "served millisecond "
                    "goes, per request: client, network+serialisation, queue, compute input, compute infer, "
                    "compute output. With perf_analyzer as the client (column client) the split is its own, over "
                    "the same requests as its latencies; with the Python client the server's statistics give "
                    "the phases and the rest of the client's mean is client+network together.")]
    overhead = serving_overhead(table)
    blocks.append(("table", overhead) if len(overhead) else ("p", "No served cell produced numbers."))
    blocks += [("figure", "throughput_vs_concurrency", "served throughput versus concurrent clients (dynamic "
                                                       "batching)"),
               ("p", "Under load (batch-1 requests from N closed-loop clients): requests/s against the same model "
                     "in-process at batch N, the batch the server formed on average, and the same split."),
               ("table", concurrency_table(serving, table))]
    return blocks


def correctness_table(table: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in ("engine", "precision", "batch_size", "seq_len", "padding", "status", "max_abs_diff",
                           "agreement", "accuracy", "split_max_abs_diff", "split_agreement", "accuracy_status")
               if c in table]
    return table[columns]


def environment_table(table: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in ("hostname", "gpu_name", "gpu_uuid", "cpu", "torch", "git_commit", "slurm_job_id")
               if c in table]
    # dropna=False: a run outside Slurm has no job id, and NaN never equals NaN
    env = table.groupby(columns, dropna=False, sort=False).size().rename("cells").reset_index()
    return env[["cells", *columns]]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True)
    parser.add_argument("--serving", required=True, help="serving.csv from the aggregate step")
    parser.add_argument("--profiles", required=True, help="profiles.csv from the aggregate step")
    parser.add_argument("--profile-tops", required=True, help="profile_tops.csv from the aggregate step")
    parser.add_argument("--peaks", required=True, help="peaks.json from the calibrate step")
    parser.add_argument("--dataset-info", required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--baseline-engine", default="eager")
    parser.add_argument("--baseline-precision", default="fp32")
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    out = Path(args.out_dir)
    build(args.table, args.serving, args.profiles, args.profile_tops, args.peaks, args.dataset_info, args.model_dir,
          {"engine": args.baseline_engine, "precision": args.baseline_precision}, default_targets(),
          str(out / "report.md"),
          str(out / "report.html"),
          {name: str(out / "figures" / f"{name}.png") for name in FIGURES})


if __name__ == "__main__":
    if "snakemake" in globals():
        smk = snakemake  # noqa: F821
        setup_logging(snakemake_log(smk))
        build(smk.input.table, smk.input.serving, smk.input.profiles, smk.input.profile_tops, smk.input.peaks,
              smk.input.dataset_info, smk.input.model_dir, smk.params.baseline, smk.params.targets, smk.output.md, smk.output.html, {name: smk.output[name] for name in FIGURES})
    else:
        main()
