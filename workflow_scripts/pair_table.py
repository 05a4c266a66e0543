"""Step 6b: every side-by-side pair result -> one tidy CSV row per pair (results/aggregate/pairs.csv)."""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import logging

import pandas as pd

from workflow_scripts.results import read_json, write_csv
from workflow_scripts.step_io import run_step, setup_logging

log = logging.getLogger("pair_table")
PAIR_KEYS = ["engine", "precision", "batch_size", "seq_len", "padding"]
COLUMNS = [*PAIR_KEYS, "device", "baseline_engine", "baseline_precision", "status", "reason", "speedup",
           "speedup_ci_low", "speedup_ci_high", "ratio_cv", "ratio_regime_low", "ratio_regime_high", "engine_p50_ms",
           "baseline_p50_ms", "rounds", "unstable", "throttled", "cpu_steal_share", "gpu_name", "gpu_uuid",
           "result_file"]


def pair_row(result: dict, path: str) -> dict:
    """One pair as a row; `unstable` joins the reasons the comparison should not be trusted ('' when none)."""
    cell, pair, host = result["cell"], result.get("pair") or {}, result.get("host") or {}
    low, high = pair.get("speedup_ci95", [None, None])
    regime_low, regime_high = (pair.get("ratio_regimes") or {}).get("levels_ms", [None, None])
    p50 = pair.get("p50_ms") or {}
    return {**{key: cell[key] for key in PAIR_KEYS}, "device": cell["device"],
            "baseline_engine": cell["baseline"]["engine"], "baseline_precision": cell["baseline"]["precision"],
            "status": result["status"], "reason": result["reason"], "speedup": pair.get("speedup"),
            "speedup_ci_low": low, "speedup_ci_high": high, "ratio_cv": pair.get("ratio_cv"),
            "ratio_regime_low": regime_low, "ratio_regime_high": regime_high,
            "engine_p50_ms": p50.get("engine"), "baseline_p50_ms": p50.get("baseline"),
            "rounds": sum(len(r) for r in pair.get("ratios") or []),
            "unstable": "; ".join(pair.get("unstable") or []), "throttled": host.get("throttled"),
            "cpu_steal_share": host.get("cpu_steal_share"), "gpu_name": result["environment"]["gpu_name"],
            "gpu_uuid": result["environment"].get("gpu_uuid"), "result_file": path}  # which card: as cells.csv


def pair_table(paths: list[str]) -> pd.DataFrame:
    """One row per pair result file (COLUMNS), sorted by cell; empty with COLUMNS when there is none."""
    rows = [pair_row(read_json(path), path) for path in paths]
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.sort_values(PAIR_KEYS).reset_index(drop=True) if rows else table


def write_table(paths: list[str], out_path: str) -> pd.DataFrame:
    """pair_table(paths) written atomically to out_path as CSV; returns it."""
    table = pair_table(paths)
    write_csv(out_path, table)
    return table


def main(argv=None) -> None:
    """The command line: pair result JSON files -> pairs.csv (--out)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", nargs="*", help="pair result JSON files")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    setup_logging()
    write_table(args.results, args.out)


def run_job(smk) -> None:
    """The job of rule pair_table in rules/pairs.smk, called by `step_io.run_step`."""
    table = write_table(list(smk.input.pairs), smk.output.table)
    log.info("%d pairs: %s", len(table), table["status"].value_counts().to_dict())


if __name__ == "__main__":
    run_step(globals(), run_job, main)
