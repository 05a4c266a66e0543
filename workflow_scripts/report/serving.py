"""The report's serving section: what serving costs over the same model in-process (each served engine
against its `twin`), where each served millisecond goes, and throughput under concurrent load."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from workflow_scripts.report.context import ReportContext  # noqa: E402
from workflow_scripts.report.figures import save  # noqa: E402
from workflow_scripts.results import TIMED_STATUSES  # noqa: E402


def in_process_twin(table: pd.DataFrame, twin: str, precision: str, batch_size: int, seq_len: int,
                    padding: str = "max_length") -> pd.DataFrame:
    """The timed cells of `twin` (the in-process engine a served engine runs: its `twin` column) at one cell."""
    return table[(table.engine == twin) & (table.precision == precision)
                 & (table.batch_size == batch_size) & (table.seq_len == seq_len) & (table.padding == padding)
                 & table.status.isin(TIMED_STATUSES)]


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
    """Per timed served cell: served p50 minus its twin's p50 at the same cell (ms), with the served latency's
    split (latency_split). Empty without served cells; rounded to µs."""
    served = table[table.served.astype(bool) & table.status.isin(TIMED_STATUSES)]
    rows = []
    for row in served.itertuples():
        match = in_process_twin(table, row.twin, row.precision, row.batch_size, row.seq_len, row.padding)
        in_process = match.p50_ms.iloc[0] if len(match) else float("nan")
        rows.append({
            "served engine": row.engine, "precision": row.precision, "batch_size": row.batch_size,
            "seq_len": row.seq_len, "padding": row.padding, "client": getattr(row, "client", None), "served p50 ms": row.p50_ms,
            "in-process engine": row.twin, "in-process p50 ms": in_process, "overhead ms": row.p50_ms - in_process,
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
    """Requests/s against concurrent clients, one line per served engine, precision and sequence length
    (a placeholder text when no load level was measured: the figure is a declared output)."""
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
    save(fig, path)


def blocks(ctx: ReportContext) -> list[tuple]:
    """Draws throughput_vs_concurrency (always); the section's blocks only when a served engine was swept."""
    plot_concurrency(ctx.serving, ctx.figure_paths["throughput_vs_concurrency"])
    served = ctx.table[ctx.table.served.astype(bool)]
    if served.empty:
        return []
    twins = "; ".join(f"{engine}: {twin}" for engine, twin in
                      served[["engine", "twin"]].drop_duplicates().itertuples(index=False))
    overhead = ctx.serving_overhead
    return [("h2", "Serving"),
            ("p", f"What serving costs on top of running the same model in-process ({twins}), and where each "
                  "served millisecond goes, per request: client, network+serialisation, queue, compute input, "
                  "compute infer, compute output. With perf_analyzer as the client (column client) the split is "
                  "its own, over the same requests as its latencies; with the Python client the server's "
                  "statistics give the phases and the rest of the client's mean is client+network together."),
            ("table", overhead) if len(overhead) else ("p", "No served cell produced numbers."),
            ("figure", "throughput_vs_concurrency", "served throughput versus concurrent clients (dynamic "
                                                    "batching)"),
            ("p", "Under load (batch-1 requests from N closed-loop clients): requests/s against the same model "
                  "in-process at batch N, the batch the server formed on average, and the same split."),
            ("table", concurrency_table(ctx.serving, ctx.table))]
