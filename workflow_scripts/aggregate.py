"""Step 6: every cell's JSON result -> tidy CSVs: one row per benchmark cell (whatever its status), per served
load level, per profile (cell x tool), and the profiles' top kernels and operators."""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import logging

import pandas as pd

from workflow_scripts import engines
from workflow_scripts.experiment import piece_tables
from workflow_scripts.results import read_json, write_csv
from workflow_scripts.step_io import add_config_arguments, experiment_from_args, run_step, setup_logging

log = logging.getLogger("aggregate")
CELL_KEYS = ["engine", "precision", "batch_size", "seq_len", "padding"]
# The timing rule's settings (config measurement), each as a column measurement_<key>: the report says how
# the run's cells were timed from these
TIMING_RULE = ["warmup_seconds", "stable_windows", "stable_tolerance", "warmup_max_seconds", "window_seconds",
               "min_window_iters", "windows", "repeats"]


def energy_columns(host: dict | None, calls: int | None, batch_size: int, client: str | None = None) -> dict:
    """The card's energy over a cell's timed windows: energy_j_per_1k_inferences (J per 1,000 samples),
    average_power_w (W) and energy_reason (why they are empty: a CPU cell, no NVML counter, no host state, a
    cell timed by an external load `client` in its own windows)."""
    energy = (host or {}).get("energy")
    if not energy or not calls:
        reason = (host or {}).get("energy_reason") or (
            f"timed by {client} in its own windows, which no energy reading follows" if host is None and client
            else "no host state recorded over the timed windows")
        return {"energy_j_per_1k_inferences": None, "average_power_w": None, "energy_reason": reason}
    return {"energy_j_per_1k_inferences": energy["joules"] / (calls * batch_size) * 1000,
            "average_power_w": energy["average_power_w"], "energy_reason": None}


def host_columns(host: dict | None) -> dict:
    """The host's state over a cell's timed windows (host_state.HostMonitor.summary) as columns: SM clock
    range (MHz), every clock-event reason seen ('; '-joined, '' for none; None without a GPU reading), the
    1-minute load average before and after."""
    host = host or {}
    gpu = host.get("gpu") or {}
    clock = gpu.get("sm_clock_mhz") or {}
    load = host.get("load_average_1m") or [None, None]
    return {"sm_clock_min_mhz": clock.get("min"), "sm_clock_max_mhz": clock.get("max"),
            "clock_event_reasons": "; ".join(gpu["clock_event_reasons"]) if "clock_event_reasons" in gpu else None,
            "load_average_start": load[0], "load_average_end": load[1]}


def latency_row(result: dict, path: str, roles: dict[str, dict]) -> dict:
    """One timed cell (or load level) as a flat row: its keys, role, status, statistics and environment.

    roles: engines.roles() of the run's config, giving the `served` and `twin` columns."""
    cell, latency = result["cell"], result.get("latency") or {}
    wall, gpu = latency.get("wall_ms") or {}, latency.get("gpu_ms") or {}
    correctness = result.get("correctness") or {}
    startup, memory = result.get("startup") or {}, result.get("memory") or {}
    env, model = result["environment"], result["model"]
    # absent from results made before windows and host state were recorded
    warmup, host = latency.get("warmup") or {}, result.get("host") or {}
    regime_levels = (latency.get("regimes") or {}).get("levels_ms", [None, None])
    row = {**{key: cell[key] for key in CELL_KEYS}, **roles[cell["engine"]], "device": cell["device"],
           "status": result["status"], "reason": result["reason"]}
    for stat in ("p50", "p90", "p95", "p99", "mean", "std", "min", "max"):
        row[f"{stat}_ms"] = wall.get(stat)
    row["p50_ci_low_ms"], row["p50_ci_high_ms"] = wall.get("p50_ci95", [None, None])
    row["mean_ci_low_ms"], row["mean_ci_high_ms"] = wall.get("mean_ci95", [None, None])
    row["gpu_p50_ms"], row["gpu_mean_ms"] = gpu.get("p50"), gpu.get("mean")
    row.update({
        "throughput_samples_per_s": result.get("throughput_samples_per_s"),
        "repeat_p50_cv": latency.get("repeat_p50_cv"),
        "window_p50_cv": latency.get("window_p50_cv"),
        "regime_low_ms": regime_levels[0],
        "regime_high_ms": regime_levels[1],
        "warmup_s": warmup.get("seconds"),
        "warmup_steady": warmup.get("steady"),
        "throttled": host.get("throttled"),
        "cpu_steal_share": host.get("cpu_steal_share"),
        "steal_heavy": host.get("steal_heavy"),
        **host_columns(host),
        **{f"measurement_{key}": (result.get("measurement") or {}).get(key) for key in TIMING_RULE},
        **energy_columns(result.get("host"), latency.get("iterations"), cell["batch_size"],
                         (result.get("load_client") or {}).get("name")),
        "iterations": latency.get("iterations"),
        "pinned_core": latency.get("pinned_core"),
        "tokens_per_batch": result.get("tokens_per_batch"),
        "load_s": startup.get("load_s"),
        "first_call_s": startup.get("first_call_s"),
        "peak_gpu_mb": memory.get("peak_gpu_mb"),
        "peak_host_rss_mb": memory.get("peak_host_rss_mb"),
        "max_abs_diff": correctness.get("max_abs_diff"),
        "agreement": correctness.get("agreement"),
        "model_id": model["model_id"],
        "weights": model["weights"],
        "gpu_name": env["gpu_name"],
        "gpu_uuid": env.get("gpu_uuid"),  # absent from results made before it was recorded
        "gpu_driver": env.get("gpu_driver"),
        "cpu": env["cpu"],
        "cpu_count": env.get("cpu_count"),
        "cpu_affinity": env.get("cpu_affinity"),
        "torch_threads": env.get("torch_threads"),
        "hostname": env["hostname"],
        "torch": env["torch"],
        "transformers": env.get("transformers"),
        "git_commit": env["git_commit"],
        "time_utc": env["time_utc"],
        "slurm_job_id": env["slurm_job_id"],
        "result_file": path,
    })
    return row


def accuracy_row(result: dict) -> dict:
    """One whole-split pass as the columns joined onto its engine and precision's cells."""
    cell, correctness = result["cell"], result.get("correctness") or {}
    return {**{key: cell[key] for key in ("engine", "precision", "seq_len", "padding")},
            "accuracy": result.get("accuracy"), "accuracy_status": result["status"],
            "accuracy_reason": result["reason"], "split_max_abs_diff": correctness.get("max_abs_diff"),
            "split_agreement": correctness.get("agreement")}


def server_columns(result: dict) -> dict:
    """A served result's server statistics (server_*), who sent its requests (client) and, where that client
    split each request itself (perf_analyzer), its split (split_*_ms)."""
    server = result.get("server") or {}
    split = result.get("latency_split_ms") or {}
    return {**{f"server_{key}": value for key, value in server.items()},
            "client": (result.get("load_client") or {}).get("name"),
            **{f"split_{key}_ms": ms for key, ms in split.items()}}


def cell_row(result: dict, path: str, roles: dict[str, dict]) -> dict:
    """One timed cell as a row (latency_row) whose throughput_samples_per_s is batch size / p50: the report's
    one throughput, from the statistic its latencies rank by (the result file's own is batch size / mean; a
    load level's is the requests completed per second, kept as measured)."""
    row = latency_row(result, path, roles)
    if row["p50_ms"]:
        row["throughput_samples_per_s"] = row["batch_size"] * 1000.0 / row["p50_ms"]
    return row


def load_row(result: dict, path: str, roles: dict[str, dict]) -> dict:
    """One load level as a row: a latency row plus concurrency, client processes and server statistics."""
    row = latency_row(result, path, roles)
    row["concurrency"] = result["cell"]["concurrency"]
    row["client_processes"] = (result.get("load_client") or {}).get("processes")
    row.update(server_columns(result))
    return row


def profile_row(result: dict, path: str) -> dict:
    """One profile (cell x tool) as a row: status, per-iteration numbers, time per kernel category."""
    cell, profile = result["cell"], result.get("profile") or {}
    row = {**{key: cell[key] for key in CELL_KEYS}, "device": cell["device"], "tool": result["profiler"],
           "status": result["status"], "reason": result["reason"]}
    for key in PROFILE_NUMBERS:
        row[key] = profile.get(key)
    for name, ms in (profile.get("category_ms_per_iter") or {}).items():
        row[f"{name}_ms_per_iter"] = ms
    row["tool_version"] = profile.get("tool_version")
    row["gpu_name"] = result["environment"]["gpu_name"]
    row["result_file"] = path
    return row


def top_rows(result: dict) -> list[dict]:
    """The profile's top kernels and (PyTorch profiler) top operators, one row each."""
    cell, profile = result["cell"], result.get("profile") or {}
    keys = {key: cell[key] for key in CELL_KEYS}
    tool = result["profiler"]
    rows = [{**keys, "tool": tool, "kind": "kernel", "rank": rank, "name": k["name"], "category": k["category"],
             "ms_per_iter": k["ms_per_iter"], "calls_per_iter": k["calls_per_iter"], "mean_us": k["mean_us"],
             "time_fraction": k["time_fraction"]} for rank, k in enumerate(profile.get("top_kernels") or [], 1)]
    rows += [{**keys, "tool": tool, "kind": "op", "rank": rank, "name": op["name"], "category": None,
              "ms_per_iter": op["self_cpu_ms_per_iter"], "calls_per_iter": op["calls_per_iter"], "mean_us": None,
              "time_fraction": None} for rank, op in enumerate(profile.get("top_ops") or [], 1)]
    return rows


PROFILE_NUMBERS = ["iterations", "wall_ms_per_iter", "gpu_busy_ms_per_iter", "gpu_busy_fraction", "kernels_per_iter",
                   "kernel_launches_per_iter", "graph_launches_per_iter", "cuda_api_ms_per_iter", "cpu_ops_per_iter"]
PROFILE_COLUMNS = [*CELL_KEYS, "device", "tool", "status", "reason", *PROFILE_NUMBERS]
TOP_COLUMNS = [*CELL_KEYS, "tool", "kind", "rank", "name", "category", "ms_per_iter", "calls_per_iter", "mean_us",
               "time_fraction"]
SERVING_COLUMNS = ["engine", "served", "twin", "precision", "seq_len", "concurrency", "status", "reason", "p50_ms", "p90_ms",
                   "p99_ms", "mean_ms", "throughput_samples_per_s", "iterations"]


def aggregate(result_paths: list[str], roles: dict[str, dict]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame,
                                                                         pd.DataFrame]:
    """(one row per benchmark cell with its accuracy pass joined in, one row per served load level,
    one row per profile, the profiles' top kernels and operators).

    result_paths: cell result JSON files of any kind; roles: engines.roles() (served, twin per engine).
    Raises SystemExit when there is no benchmark cell, ValueError on a result of unknown kind."""
    latency, accuracy, load, profiles, tops = [], [], [], [], []
    for path in result_paths:
        result = read_json(path)
        if result["kind"] == "latency":
            latency.append({**cell_row(result, path, roles), **server_columns(result)})
        elif result["kind"] == "accuracy":
            accuracy.append(accuracy_row(result))
        elif result["kind"] == "profile":
            profiles.append(profile_row(result, path))
            tops += top_rows(result)
        elif result["kind"] == "load":
            load.append(load_row(result, path, roles))
        else:
            raise ValueError(f"{path}: unknown result kind {result['kind']!r}")
    profile_table = pd.DataFrame(profiles, columns=None if profiles else PROFILE_COLUMNS)
    top_table = pd.DataFrame(tops, columns=TOP_COLUMNS)
    serving = pd.DataFrame(load, columns=None if load else SERVING_COLUMNS)
    if load:
        serving = serving.sort_values(["engine", "precision", "seq_len", "concurrency"]).reset_index(drop=True)
    table = pd.DataFrame(latency)
    if table.empty:
        raise SystemExit("no benchmark cell results to aggregate")
    if accuracy:
        table = table.merge(pd.DataFrame(accuracy), on=["engine", "precision", "seq_len", "padding"], how="left")
        # a whole-split mismatch makes the cell untrustworthy too, even if its own batches passed
        split_mismatch = (table["status"] == "ok") & (table["accuracy_status"] == "mismatch")
        table.loc[split_mismatch, "status"] = "mismatch"
        table.loc[split_mismatch, "reason"] = table.loc[split_mismatch, "accuracy_reason"]
    if profiles:
        profile_table = profile_table.sort_values([*CELL_KEYS, "tool"]).reset_index(drop=True)
    return table.sort_values(CELL_KEYS).reset_index(drop=True), serving, profile_table, top_table


def with_pieces(tables: tuple[pd.DataFrame, ...], piece_dirs: list[str], roles: dict[str, dict]
                ) -> tuple[pd.DataFrame, ...]:
    """This run's tables joined by those of earlier pieces (other runs, other machines): a `piece` column says
    where each row was measured. A cell measured twice on the same GPU model is an error, not a silent pick.
    Pieces aggregated before the `served` and `twin` columns existed get them from `roles`."""
    if not piece_dirs:
        return tables
    merged = []
    for table, paths in zip(tables, zip(*(piece_tables(d) for d in piece_dirs))):
        frames = [table.assign(piece="this run")]
        for results_dir, path in zip(piece_dirs, paths):
            if not path.exists():
                raise SystemExit(f"merge_pieces: {path} is missing; run that piece to its end (its aggregate "
                                 "step) first, or fix the folder in merge_pieces")
            frames.append(with_roles(pd.read_csv(path), roles).assign(piece=str(results_dir)))
        merged.append(pd.concat([f for f in frames if len(f)], ignore_index=True) if any(map(len, frames))
                      else table.assign(piece=[]))
    cells = merged[0]
    twice = cells[cells.duplicated([*CELL_KEYS, "gpu_name"], keep=False)]
    if len(twice):
        listed = "; ".join(f"{r.engine}/{r.precision}/bs{r.batch_size}/seq{r.seq_len}/{r.padding} in {r.piece}"
                           for r in twice.itertuples())
        raise SystemExit(f"merge_pieces: cells measured in more than one piece on the same GPU model: {listed}. "
                         "Narrow this run's sweep or drop one piece.")
    merged[0] = cells.sort_values(CELL_KEYS).reset_index(drop=True)
    return tuple(merged)


def with_roles(table: pd.DataFrame, roles: dict[str, dict]) -> pd.DataFrame:
    """The table with `served` and `twin` columns where it has engines and lacks them (older pieces)."""
    if "engine" not in table or table.empty:
        return table
    for column in ("served", "twin"):
        if column not in table:
            table = table.assign(**{column: table.engine.map(lambda engine: roles[engine][column])})
    return table


def main(argv=None) -> None:
    """The command line: aggregate result JSON files into cells.csv and, where asked, serving.csv, profiles.csv
    and profile_tops.csv; served/twin roles and merge_pieces come from the effective config."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", nargs="+", help="cell result JSON files (benchmark and accuracy)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--out-serving", help="CSV of the served load levels")
    parser.add_argument("--out-profiles", help="CSV of the profiles (cell x tool)")
    parser.add_argument("--out-profile-tops", help="CSV of the profiles' top kernels and operators")
    parser.add_argument("--merge-piece", action="append", metavar="RESULTS_DIR",
                        help="results folder of an earlier piece of the sweep whose tables join this one (over "
                             "merge_pieces)")
    add_config_arguments(parser, device=False)  # the twin of a served engine and merge_pieces come from it
    args = parser.parse_args(argv)
    experiment = experiment_from_args(parser, args)
    setup_logging()
    roles = engines.roles(experiment)
    pieces = experiment["merge_pieces"] if args.merge_piece is None else args.merge_piece
    tables = with_pieces(aggregate(args.results, roles), pieces, roles)
    for table, path in zip(tables, (args.out, args.out_serving, args.out_profiles, args.out_profile_tops)):
        if path:
            write_csv(path, table)


def run_job(smk) -> None:
    """The job of rules/aggregate.smk, called by `step_io.run_step`."""
    table, serving, profiles, tops = with_pieces(
        aggregate(list(smk.input.bench) + list(smk.input.accuracy) + list(smk.input.load)
                  + list(smk.input.profiles), smk.params.engines), smk.params.pieces, smk.params.engines)
    write_csv(smk.output.table, table)
    write_csv(smk.output.serving, serving)
    write_csv(smk.output.profiles, profiles)
    write_csv(smk.output.profile_tops, tops)
    log.info("%d cells: %s", len(table), table["status"].value_counts().to_dict())


if __name__ == "__main__":
    run_step(globals(), run_job, main)
