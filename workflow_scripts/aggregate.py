"""Step 6: every cell's JSON result -> one tidy CSV, one row per benchmark cell, whatever its status."""

import argparse
import io
import logging

import pandas as pd

from workflow_scripts.results import atomic_write_text, read_json
from workflow_scripts.step_io import setup_logging, snakemake_log

log = logging.getLogger("aggregate")
CELL_KEYS = ["engine", "precision", "batch_size", "seq_len", "padding"]


def latency_row(result: dict, path: str) -> dict:
    cell, latency = result["cell"], result.get("latency") or {}
    wall, gpu = latency.get("wall_ms") or {}, latency.get("gpu_ms") or {}
    correctness = result.get("correctness") or {}
    startup, memory = result.get("startup") or {}, result.get("memory") or {}
    env, model = result["environment"], result["model"]
    row = {**{key: cell[key] for key in CELL_KEYS}, "device": cell["device"], "status": result["status"],
           "reason": result["reason"]}
    for stat in ("p50", "p90", "p95", "p99", "mean", "std", "min", "max"):
        row[f"{stat}_ms"] = wall.get(stat)
    row["p50_ci_low_ms"], row["p50_ci_high_ms"] = wall.get("p50_ci95", [None, None])
    row["mean_ci_low_ms"], row["mean_ci_high_ms"] = wall.get("mean_ci95", [None, None])
    row["gpu_p50_ms"], row["gpu_mean_ms"] = gpu.get("p50"), gpu.get("mean")
    row.update({
        "throughput_samples_per_s": result.get("throughput_samples_per_s"),
        "repeat_p50_cv": latency.get("repeat_p50_cv"),
        "iterations": latency.get("iterations"),
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
        "cpu": env["cpu"],
        "hostname": env["hostname"],
        "torch": env["torch"],
        "git_commit": env["git_commit"],
        "time_utc": env["time_utc"],
        "slurm_job_id": env["slurm_job_id"],
        "result_file": path,
    })
    return row


def accuracy_row(result: dict) -> dict:
    cell, correctness = result["cell"], result.get("correctness") or {}
    return {**{key: cell[key] for key in ("engine", "precision", "seq_len", "padding")},
            "accuracy": result.get("accuracy"), "accuracy_status": result["status"],
            "accuracy_reason": result["reason"], "split_max_abs_diff": correctness.get("max_abs_diff"),
            "split_agreement": correctness.get("agreement")}


def server_columns(result: dict) -> dict:
    server = result.get("server") or {}
    return {f"server_{key}": value for key, value in server.items() if key != "requests"}


def load_row(result: dict, path: str) -> dict:
    row = latency_row(result, path)
    row["concurrency"] = result["cell"]["concurrency"]
    row.update(server_columns(result))
    return row


SERVING_COLUMNS = ["engine", "precision", "seq_len", "concurrency", "status", "reason", "p50_ms", "p90_ms",
                   "p99_ms", "mean_ms", "throughput_samples_per_s", "iterations"]


def aggregate(result_paths: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per benchmark cell with its accuracy pass joined in, one row per served load level)."""
    latency, accuracy, load = [], [], []
    for path in result_paths:
        result = read_json(path)
        if result["kind"] == "latency":
            latency.append({**latency_row(result, path), **server_columns(result)})
        elif result["kind"] == "accuracy":
            accuracy.append(accuracy_row(result))
        else:
            load.append(load_row(result, path))
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
    return table.sort_values(CELL_KEYS).reset_index(drop=True), serving


def write_csv(table: pd.DataFrame, out_path: str) -> None:
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    atomic_write_text(out_path, buffer.getvalue())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", nargs="+", help="cell result JSON files (benchmark and accuracy)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--out-serving", help="CSV of the served load levels")
    args = parser.parse_args(argv)
    setup_logging()
    table, serving = aggregate(args.results)
    write_csv(table, args.out)
    if args.out_serving:
        write_csv(serving, args.out_serving)


if __name__ == "__main__":
    if "snakemake" in globals():
        smk = snakemake  # noqa: F821
        setup_logging(snakemake_log(smk))
        table, serving = aggregate(list(smk.input.bench) + list(smk.input.accuracy) + list(smk.input.load))
        write_csv(table, smk.output.table)
        write_csv(serving, smk.output.serving)
        log.info("%d cells: %s", len(table), table["status"].value_counts().to_dict())
    else:
        main()
