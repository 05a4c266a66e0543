"""perf_analyzer, Triton's own load client, as the client of served cells and of the concurrency sweep.

The binary ships in the tritonclient wheel's data files (2.60 carries it; pip puts it beside the
interpreter). It is written in C++, so its own cost per request is microseconds, and its CSV splits each
request's latency into client, network and the server's queue / compute phases over the same requests.
It needs glibc >= 2.38: on Debian 12 it does not start, and `triton.load.client: auto` then falls back to the
project's own Python load generator (serving/load_clients.py).

Light on imports (no torch): the load step and the tests import it.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np

CLIENTS = ("auto", "perf_analyzer", "python")
PROBE_TIMEOUT_S = 30


class PerfAnalyzerError(RuntimeError):
    """perf_analyzer ran but gave no result (it did not stabilise, the server failed, bad arguments)."""


def find_executable(executable: str = "perf_analyzer") -> str | None:
    """The binary: a path as given, else on PATH, else beside this interpreter (where pip installs the
    tritonclient wheel's data files, also when the venv is not activated)."""
    if os.sep in executable:
        return executable if os.access(executable, os.X_OK) else None
    beside = Path(sys.executable).parent / executable
    return shutil.which(executable) or (str(beside) if os.access(beside, os.X_OK) else None)


@cache
def _probe(executable: str) -> tuple[str | None, str | None]:
    """(its version line, None) when perf_analyzer is found and starts here, else (None, why not)."""
    path = find_executable(executable)
    if path is None:
        return None, (f"no {executable!r} executable on PATH or beside {sys.executable} (the tritonclient 2.60 "
                      "wheel installs one; later wheels leave it out)")
    try:  # --version prints "Perf Analyzer Version ..." and exits 0 once the binary has loaded (--help exits 99)
        probe = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"{path} does not run here: {error}"
    words = (probe.stderr + probe.stdout).strip().splitlines()
    if probe.returncode != 0:
        return None, f"{path} does not run here (exit code {probe.returncode}): {words[0] if words else 'no output'}"
    return (words[0] if words else "unknown version"), None


def unusable_reason(executable: str = "perf_analyzer") -> str | None:
    """None when perf_analyzer is found and starts here, else why not (the loader's own words, e.g. on
    Debian 12: "version `GLIBC_2.38' not found"). Asked once per process."""
    return _probe(executable)[1]


def version(executable: str = "perf_analyzer") -> str | None:
    """perf_analyzer's own version line ("Perf Analyzer Version 2.60.0 (commit ...)"), None if it cannot run."""
    return _probe(executable)[0]


def choose_client(setting: str, executable: str = "perf_analyzer") -> tuple[str, str | None]:
    """(client, why): `perf_analyzer` or `python` for triton.load.client auto | perf_analyzer | python; why
    says why auto fell back to python. A perf_analyzer asked for by name that cannot run is an error."""
    if setting not in CLIENTS:
        raise ValueError(f"triton.load.client: {setting!r}; expected one of {', '.join(CLIENTS)}")
    if setting == "python":
        return "python", None
    reason = unusable_reason(executable)
    if reason is None:
        return "perf_analyzer", None
    if setting == "perf_analyzer":
        raise PerfAnalyzerError(f"triton.load.client is perf_analyzer, but {reason}; set it to auto or python")
    return "python", reason


def write_input_data(input_ids: np.ndarray, attention_mask: np.ndarray, path: str | Path) -> Path:
    """perf_analyzer's --input-data JSON: one step per row (int64 [rows, seq_len] each), so its requests carry
    the dataset's real token ids, as the Python client's do."""
    steps = [{"input_ids": {"content": ids.tolist(), "shape": [len(ids)]},
              "attention_mask": {"content": mask.tolist(), "shape": [len(mask)]}}
             for ids, mask in zip(np.asarray(input_ids), np.asarray(attention_mask))]
    path = Path(path)
    path.write_text(json.dumps({"data": steps}))
    return path


def command(executable: str, target: dict, batch_size: int, concurrency: int, input_data: str | Path,
            window_ms: int, stability_percentage: float, max_trials: int, csv_path: str | Path) -> list[str]:
    """The perf_analyzer command line for one level: `concurrency` closed-loop clients sending synchronous
    requests of `batch_size` rows, measured in windows of `window_ms` until three agree within
    `stability_percentage` % (at most `max_trials` windows). target: protocol, url, model_name (as the engine's
    request_target())."""
    return [find_executable(executable) or executable, "-m", target["model_name"], "-u", target["url"],
            "-i", target["protocol"], "-b", str(batch_size), "--concurrency-range", str(concurrency),
            "--input-data", str(input_data), "--measurement-interval", str(int(window_ms)),
            "--stability-percentage", str(stability_percentage), "--max-trials", str(max_trials),
            "-f", str(csv_path), "--verbose-csv"]


def run(argv: list[str], log_path: str | Path, timeout_s: float) -> None:
    """Run perf_analyzer, its console output appended to log_path; a non-zero exit is a PerfAnalyzerError
    naming perf_analyzer's last words (e.g. "Failed to obtain stable measurement ...")."""
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        try:
            process = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     timeout=timeout_s)
        except subprocess.TimeoutExpired as error:
            raise PerfAnalyzerError(f"perf_analyzer ran past {timeout_s:.0f} s; its output: {log_path}") from error
    if process.returncode != 0:
        tail = [line for line in Path(log_path).read_text(errors="replace").splitlines() if line.strip()][-3:]
        raise PerfAnalyzerError(f"perf_analyzer exited with code {process.returncode}: {' | '.join(tail)}")


# perf_analyzer's CSV columns (microseconds, except the rate) -> this project's names (milliseconds)
SPLIT_COLUMNS = {"client_send_ms": "Client Send", "network_ms": "Network+Server Send/Recv",
                 "queue_ms": "Server Queue", "compute_input_ms": "Server Compute Input",
                 "compute_infer_ms": "Server Compute Infer", "compute_output_ms": "Server Compute Output",
                 "client_recv_ms": "Client Recv"}
LATENCY_COLUMNS = {"p50": "p50 latency", "p90": "p90 latency", "p95": "p95 latency", "p99": "p99 latency",
                   "mean": "Avg latency"}


def parse_csv(path: str | Path) -> list[dict]:
    """perf_analyzer's `-f <csv> --verbose-csv` output: one dict per concurrency level.

    Each: concurrency, samples_per_s (perf_analyzer's inferences/s: requests x batch size), latency_ms {p50,
    p90, p95, p99, mean} (the client's per-request latency over the stable windows), split_ms {client, network,
    client_and_network, queue, compute_input, compute_infer, compute_output} where client = client send +
    client recv and network = perf_analyzer's "Network+Server Send/Recv" (transport, (de)serialisation and the
    server's own send/receive); the split sums to the mean latency within rounding (perf_analyzer clamps the
    network part at 0 when the server's time exceeds the client's). Raises ValueError naming a missing column.
    """
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{path}: no measurement row in perf_analyzer's CSV")
    levels = []
    for row in rows:
        missing = [c for c in ("Concurrency", "Inferences/Second", *SPLIT_COLUMNS.values(), *LATENCY_COLUMNS.values())
                   if c not in row]
        if missing:
            raise ValueError(f"{path}: perf_analyzer's CSV has no column {', '.join(map(repr, missing))} "
                             "(written without --verbose-csv?)")
        us = {key: float(row[column]) / 1000.0 for key, column in SPLIT_COLUMNS.items()}
        client = us["client_send_ms"] + us["client_recv_ms"]
        levels.append({
            "concurrency": int(row["Concurrency"]),
            "samples_per_s": float(row["Inferences/Second"]),
            "latency_ms": {key: float(row[column]) / 1000.0 for key, column in LATENCY_COLUMNS.items()},
            "split_ms": {"client": client, "network": us["network_ms"], "client_and_network": client + us["network_ms"],
                         **{key[:-3]: us[key] for key in ("queue_ms", "compute_input_ms", "compute_infer_ms",
                                                          "compute_output_ms")}},
        })
    return levels


def latency_result(level: dict) -> dict:
    """A parsed level in the one result schema's `latency` form. perf_analyzer reports percentiles and the
    mean of the stable windows, not single requests: what it does not report (spread, extremes, confidence
    intervals, request count) is null, never invented."""
    wall = {"n": None, "std": None, "min": None, "max": None, **level["latency_ms"],
            "p50_ci95": [None, None], "mean_ci95": [None, None],
            "throughput_samples_per_s": level["samples_per_s"]}
    return {"wall_ms": wall, "gpu_ms": None, "repeat_p50_ms": [wall["p50"]], "repeat_p50_cv": None,
            "iterations": None}
