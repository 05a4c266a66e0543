"""The report's serving section: what serving costs over the same model in-process (each served engine
against its `twin`), where each served millisecond goes, and throughput under concurrent load."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402
import pandas as pd  # noqa: E402

from workflow_scripts.report.context import ReportContext  # noqa: E402
from workflow_scripts.report.figures import placeholder, save  # noqa: E402
from workflow_scripts.report.render import MISSING, fmt, missing  # noqa: E402
from workflow_scripts.results import TIMED_STATUSES  # noqa: E402


def in_process_twin(table: pd.DataFrame, twin: str, precision: str, batch_size: int, seq_len: int,
                    padding: str = "max_length") -> pd.DataFrame:
    """The timed cells of `twin` (the in-process engine a served engine runs: its `twin` column) at one cell."""
    return table[(table.engine == twin) & (table.precision == precision)
                 & (table.batch_size == batch_size) & (table.seq_len == seq_len) & (table.padding == padding)
                 & table.status.isin(TIMED_STATUSES)]


SERVER_PHASES = ("queue", "compute_input", "compute_infer", "compute_output")


def latency_split(rows: pd.DataFrame) -> pd.DataFrame:
    """Where each served millisecond goes (ms per request, means), one row per served cell or load level:
    client, network+serialisation, their sum, queue, compute input, compute infer, compute output.

    perf_analyzer's own split where it was the client (the same requests as its latencies; its client part is
    its send and receive, its network part includes the server's own send/receive). With the Python client the
    phases are the server's per-request means over its statistics window, and client+network is the client's
    mean minus their sum, computed only where that window counted exactly the requests the client timed
    (server_requests == iterations; the timed cells begin their window after the warm-up). Elsewhere (a load
    level's window also holds its warm-up and in-flight requests) it is missing with the two counts: a mean of
    other requests subtracted would give a wrong, even negative, network cost; likewise where the server reports
    no time for a phase (Dynamo's worker has no queue). The Python client cannot time its own part apart from
    the network's, so those two stay empty.
    """
    def column(name: str) -> pd.Series:
        return rows[name].astype(float) if name in rows else pd.Series(float("nan"), index=rows.index)

    out = pd.DataFrame(index=rows.index)
    out["client ms"] = column("split_client_ms")
    out["network+serialisation ms"] = column("split_network_ms")
    for phase in SERVER_PHASES:
        out[f"{phase.replace('_', ' ')} ms"] = column(f"split_{phase}_ms").fillna(column(f"server_{phase}_ms"))
    phases = out[[f"{phase.replace('_', ' ')} ms" for phase in SERVER_PHASES]]
    unreported = [", ".join(name[:-3] for name, value in row.items() if pd.isna(value)) for _, row in phases.iterrows()]
    rest = [_client_and_network(*values) for values in zip(
        column("split_client_and_network_ms"), column("mean_ms"), phases.sum(axis=1, min_count=len(SERVER_PHASES)),
        column("server_requests"), column("iterations"), unreported)]
    out.insert(2, "client+network ms", pd.Series(rest, index=rows.index, dtype=object))
    return out


def _client_and_network(own_split: float, client_mean: float, server_ms: float, server_requests: float,
                        timed_requests: float, unreported: str) -> float | str:
    """One row's client+network ms: the load client's own split, else the client's mean less the server's phases
    over the same requests, else missing with why (unreported: the phases the server gave no time for)."""
    if pd.notna(own_split) or pd.isna(client_mean):  # perf_analyzer's own, or nothing timed to split
        return own_split
    if pd.isna(server_requests) or pd.isna(timed_requests):
        return missing("server requests not recorded")
    if server_requests != timed_requests:
        return missing(f"server counted {server_requests:.0f} requests, client timed {timed_requests:.0f}")
    if unreported:
        return missing(f"server reports no {unreported} time")
    return client_mean - server_ms


# How the serving tables show each column (render.NUMBER_FORMATS); a string (a missing value's reason) stays
SHOWN_AS = {"served p50 ms": "ms", "in-process p50 ms": "ms", "overhead ms": "ms", "served mean ms": "ms",
            "p50 ms": "ms", "p99 ms": "ms", "requests/s": "rate", "in-process samples/s at that batch": "rate",
            "share of in-process": "pct", "mean server batch": "s", "client ms": "ms",
            "network+serialisation ms": "ms", "client+network ms": "ms",
            **{f"{phase.replace('_', ' ')} ms": "ms" for phase in SERVER_PHASES}}


def shown_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """A serving table in the report's number formats (SHOWN_AS): times to the µs, rates to 0.1/s, shares
    as %; strings (reasons) and unlisted columns as they are."""
    out = frame.copy()
    for column, kind in SHOWN_AS.items():
        if column in out:
            out[column] = out[column].map(lambda v, kind=kind: v if isinstance(v, str) else fmt(kind)(v))
    return out


def serving_overhead(table: pd.DataFrame) -> pd.DataFrame:
    """Per timed served cell: served p50 minus its twin's p50 at the same cell (ms), with the served latency's
    split (latency_split). Empty without served cells; rounded to µs."""
    served = table[table.served.astype(bool) & table.status.isin(TIMED_STATUSES)]
    rows = []
    for row in served.itertuples():
        match = in_process_twin(table, row.twin, row.precision, row.batch_size, row.seq_len, row.padding)
        in_process = match.p50_ms.iloc[0] if len(match) else float("nan")
        absent = missing(f"{row.twin} not timed at this cell")
        rows.append({
            "served engine": row.engine, "precision": row.precision, "batch_size": row.batch_size,
            "seq_len": row.seq_len, "padding": row.padding, "client": getattr(row, "client", None),
            "served p50 ms": round(row.p50_ms, 3), "in-process engine": row.twin,
            "in-process p50 ms": round(in_process, 3) if len(match) else absent,
            "overhead ms": round(row.p50_ms - in_process, 3) if len(match) else absent,
            "served mean ms": round(row.mean_ms, 3),
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
        absent = missing(f"{level.twin} not timed at bs{level.concurrency}")
        rows.append({"engine": level.engine, "precision": level.precision, "seq_len": level.seq_len,
                     "concurrency": level.concurrency, "client": getattr(level, "client", None),
                     "status": level.status, "p50 ms": level.p50_ms, "p99 ms": level.p99_ms,
                     "requests/s": level.throughput_samples_per_s,
                     "in-process samples/s at that batch": round(in_process, 3) if len(twin) else absent,
                     "share of in-process": (round(level.throughput_samples_per_s / in_process, 3) if len(twin)
                                             else MISSING),
                     "mean server batch": getattr(level, "server_mean_batch_per_execution", float("nan"))})
    out = pd.DataFrame(rows)
    if len(out) and (out.status != "ok").any():  # why a level produced no numbers, beside its status
        out.insert(out.columns.get_loc("status") + 1, "reason",
                   [reason if isinstance(reason, str) and reason else MISSING
                    for reason in serving.get("reason", pd.Series(index=serving.index, dtype=object))])
    if len(out):
        out = pd.concat([out, latency_split(serving.reset_index(drop=True))], axis=1)
    return out.round(3)


def measured_levels(serving: pd.DataFrame) -> pd.DataFrame:
    """The load levels that produced numbers (status ok)."""
    return serving[serving.status == "ok"] if len(serving) else serving


def plot_concurrency(serving: pd.DataFrame, path: str) -> None:
    """Requests/s against concurrent clients, one line per served engine, precision and sequence length, of
    the levels that produced numbers (measured_levels; at least one)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for (engine, precision, seq_len), group in measured_levels(serving).groupby(["engine", "precision", "seq_len"]):
        group = group.sort_values("concurrency")
        ax.plot(group.concurrency, group.throughput_samples_per_s, marker="o", label=f"{engine} {precision} seq{seq_len}")
    ax.set_xscale("log", base=2)
    levels = sorted(measured_levels(serving).concurrency.unique())
    ax.set_xticks(levels, [str(c) for c in levels])  # ticks only where a level was measured
    ax.xaxis.set_minor_locator(NullLocator())
    ax.legend(fontsize=7)
    ax.set_xlabel("concurrent clients (batch-1 requests, closed loop)")
    ax.set_ylabel("throughput (requests/s)")
    ax.grid(True, which="both", alpha=0.3)
    save(fig, path)


def load_blocks(ctx: ReportContext) -> list[tuple]:
    """The load sweep's figure (drawn here) and table, or why there is neither."""
    path = ctx.figure_paths.get("throughput_vs_concurrency")  # declared only where the run sweeps load levels
    if not len(ctx.serving):
        return [("p", "No load sweep: no served engine of this sweep has a load client that can drive it "
                      "(config `triton.load`).")]
    intro = ("p", "Under load (batch-1 requests from N closed-loop clients): requests/s against the same model "
                  "in-process at batch N, the batch the server formed on average, and the same split.")
    table = ("table", shown_numbers(concurrency_table(ctx.serving, ctx.table)))
    if not len(measured_levels(ctx.serving)):
        why = "no load level produced numbers (their status and reason are in the table)"
        placeholder(path, why)
        return [("p", f"No throughput figure: {why}."), intro, table]
    if not path:  # levels merged from another run's pieces only: this run draws no figure of them
        return [intro, table]
    plot_concurrency(ctx.serving, path)
    return [("figure", "throughput_vs_concurrency", "served throughput versus concurrent clients (dynamic "
                                                    "batching)"), intro, table]


def blocks(ctx: ReportContext) -> list[tuple]:
    """The section's blocks, only when a served engine was swept (then the load figure where levels were
    measured)."""
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
                  "statistics give the phases (per-request means) and client+network is the client's mean less their sum, "
                  "only where the server's window counted exactly the requests the client timed (else missing, "
                  "with both counts)."),
            ("table", shown_numbers(overhead)) if len(overhead) else ("p", "No served cell produced numbers."),
            *load_blocks(ctx)]
