"""What changed since an earlier run: per cell timed in both, the p50 ratio new/old with its interval and a
verdict (faster, slower, no change detectable), written to results/report/comparison.csv. A cell that only
one run has is listed too ("only in the new run", "only in the old run"), never silently left out.

Cells are matched by engine, precision, batch size, sequence length and padding. A pair measured on different
GPU models (or CPUs), with different model ids or with different input geometry (tokens per batch) is refused,
with the reason, rather than given a ratio that would mean nothing.

The ratio's interval is built from the two runs' own p50 intervals (the statistics step's bootstrap; no second
resampling here): low = new low / old high, high = new high / old low. Both 95% intervals hold together with
probability at least 0.95² ≈ 90%, and the ends combined this way make it wider than a 95% interval of the
ratio itself, so a verdict other than "no change detectable" is a conservative call.

Command line: python -m workflow_scripts.compare NEW_RESULTS OLD_RESULTS [--max-slowdown 0.05] [--out CSV]
(results folders, each holding aggregate/cells.csv); exits 1 when a cell is slower by more than max-slowdown.
"""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from workflow_scripts import wording
from workflow_scripts.aggregate import CELL_KEYS
from workflow_scripts.experiment import missing_compared_columns
from workflow_scripts.report.context import machine_key
from workflow_scripts.results import TIMED_STATUSES, atomic_write_text
from workflow_scripts.step_io import add_config_arguments, experiment_from_args, run_step, setup_logging

log = logging.getLogger("compare")
COLUMNS = [*CELL_KEYS, "old p50 ms", "new p50 ms", "ratio", "ratio low", "ratio high", "verdict", "reason"]
# What must be equal for two cells' times to be comparable: column -> what it is called in a refusal
SAME = {"machine": "machine", "model_id": "model id", "tokens_per_batch": "input geometry (tokens per batch)"}


def _refusal(new: pd.Series, old: pd.Series) -> str:
    """Why the pair cannot be compared ("" when it can)."""
    differ = [f"{label}: {old[column]} (old) vs {new[column]} (new)" for column, label in SAME.items()
              if not (pd.isna(old[column]) and pd.isna(new[column])) and old[column] != new[column]]
    return "; ".join(differ)


# Verdicts of cells that only one of the two runs has (never given a ratio; listed so that none goes unseen)
ONLY_NEW, ONLY_OLD = "only in the new run", "only in the old run"


def _unmatched(table: pd.DataFrame, other: pd.DataFrame, verdict: str, p50_column: str) -> list[dict]:
    """Rows for the cells of `table` that `other` lacks (matched by CELL_KEYS), their p50 in `p50_column`."""
    keys = set(map(tuple, other[CELL_KEYS].astype(str).values))
    rows = []
    for _, cell in table.iterrows():
        if tuple(cell[CELL_KEYS].astype(str)) not in keys:
            rows.append({**{key: cell[key] for key in CELL_KEYS}, "old p50 ms": float("nan"),
                         "new p50 ms": float("nan"), p50_column: cell.p50_ms, "ratio": float("nan"),
                         "ratio low": float("nan"), "ratio high": float("nan"), "verdict": verdict,
                         "reason": f"{cell.status} there"})
    return rows


def compare(new: pd.DataFrame, old: pd.DataFrame) -> pd.DataFrame:
    """One row per cell of either table (COLUMNS): those in both in the new table's order, then those only in
    the new run, then those only in the old run.

    new, old: the aggregate step's cells.csv of each run (p50_ms, p50_ci_low_ms, p50_ci_high_ms in ms).
    ratio = new p50 / old p50 (above 1: slower now); verdict: "faster" (ratio high < 1), "slower" (ratio
    low > 1), "no change detectable", "refused" (reason says what differs), "not timed" (reason gives the
    statuses), or ONLY_NEW / ONLY_OLD for a cell that one run lacks (reason: its status in the other)."""
    pairs = (new.assign(machine=machine_key(new))
             .merge(old.assign(machine=machine_key(old)), on=CELL_KEYS, suffixes=("", "_old")))
    rows = []
    for _, pair in pairs.iterrows():
        now = pair[[*SAME, "status", "p50_ms", "p50_ci_low_ms", "p50_ci_high_ms"]]
        before = pd.Series({key: pair[f"{key}_old"] for key in now.index})
        row = {**{key: pair[key] for key in CELL_KEYS}, "old p50 ms": before.p50_ms, "new p50 ms": now.p50_ms,
               "ratio": float("nan"), "ratio low": float("nan"), "ratio high": float("nan"), "reason": ""}
        refused = _refusal(now, before)
        if refused:
            rows.append({**row, "verdict": "refused", "reason": refused})
            continue
        if now.status not in TIMED_STATUSES or before.status not in TIMED_STATUSES:
            rows.append({**row, "verdict": "not timed", "reason": f"{before.status} (old), {now.status} (new)"})
            continue
        low, high = now.p50_ci_low_ms / before.p50_ci_high_ms, now.p50_ci_high_ms / before.p50_ci_low_ms
        verdict = "slower" if low > 1 else "faster" if high < 1 else "no change detectable"
        untrusted = [f"{label} is {status}" for label, status in (("old", before.status), ("new", now.status))
                     if status != "ok"]
        rows.append({**row, "ratio": now.p50_ms / before.p50_ms, "ratio low": low, "ratio high": high,
                     "verdict": verdict, "reason": "; ".join(untrusted)})
    rows += _unmatched(new, old, ONLY_NEW, "new p50 ms") + _unmatched(old, new, ONLY_OLD, "old p50 ms")
    return pd.DataFrame(rows, columns=COLUMNS)


def regressions(comparison: pd.DataFrame, max_slowdown: float) -> pd.DataFrame:
    """The cells slower by more than max_slowdown (0.05 = 5%) even at their interval's low end."""
    return comparison[(comparison.verdict == "slower") & (comparison["ratio low"] > 1 + max_slowdown)]


def describe(rows: pd.DataFrame) -> list[str]:
    """One line per compared cell: its keys, ratio and interval."""
    return [f"{r.engine}/{r.precision}/bs{r.batch_size}/seq{r.seq_len}/{r.padding} at {r.ratio:.3f}× the earlier "
            f"p50 (interval {r['ratio low']:.3f}–{r['ratio high']:.3f})" for _, r in rows.iterrows()]


def read_cells(path: str | Path) -> pd.DataFrame:
    """A cells.csv; SystemExit naming the file and the columns it lacks (once a bare KeyError)."""
    missing = missing_compared_columns(path)
    if missing:
        raise SystemExit(f"compare: {path} lacks the column(s) {', '.join(missing)} (a cells.csv from an older "
                         "inferbench or made by hand? Run its aggregate step again)")
    return pd.read_csv(path)


def cells_table(results_dir: str | Path) -> pd.DataFrame:
    """A run's aggregate/cells.csv; SystemExit naming the file when the folder has none or it lacks columns."""
    path = Path(results_dir) / "aggregate" / "cells.csv"
    if not path.is_file():
        raise SystemExit(f"compare: {results_dir} holds no aggregate/cells.csv (give a results folder of a "
                         "finished run)")
    return read_cells(path)


def write(new_table: str, old_table: str, out: str) -> pd.DataFrame:
    """Compare two cells.csv files and write the comparison atomically to out; returns it."""
    comparison = compare(read_cells(new_table), read_cells(old_table))
    for verdict, count in comparison.verdict.value_counts().items():
        log.info("%s: %s", wording.count(count, "cell"), verdict)
    for row in comparison[comparison.verdict == "refused"].itertuples():
        log.warning("refused %s/%s/bs%s: %s", row.engine, row.precision, row.batch_size, row.reason)
    for line in unmatched_lines(comparison):
        log.warning("%s", line)
    atomic_write_text(out, comparison.to_csv(index=False))
    return comparison


def unmatched_lines(comparison: pd.DataFrame) -> list[str]:
    """One line per verdict ONLY_NEW / ONLY_OLD that occurs, naming its cells."""
    lines = []
    for verdict in (ONLY_NEW, ONLY_OLD):
        rows = comparison[comparison.verdict == verdict]
        if len(rows):
            names = ", ".join(f"{r.engine}/{r.precision}/bs{r.batch_size}/seq{r.seq_len}/{r.padding}"
                              for r in rows.itertuples())
            lines.append(f"{wording.count(len(rows), 'cell')} {verdict}, not compared: {names}")
    return lines


def main(argv=None) -> int:
    """The command line: compare two runs' cells.csv, print the table, unmatched cells and regressions;
    returns 1 when a cell slowed down by more than the allowed relative slowdown, else 0."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("new", help="results folder of the new run")
    parser.add_argument("old", help="results folder of the earlier run")
    parser.add_argument("--max-slowdown", type=float, help="relative slowdown that fails, over report.max_slowdown")
    parser.add_argument("--out", help="write the comparison here as CSV")
    add_config_arguments(parser, device=False)
    args = parser.parse_args(argv)
    experiment = experiment_from_args(parser, args)
    max_slowdown = experiment["report"]["max_slowdown"] if args.max_slowdown is None else args.max_slowdown
    setup_logging()
    comparison = compare(cells_table(args.new), cells_table(args.old))
    if args.out:
        atomic_write_text(args.out, comparison.to_csv(index=False))
    print(comparison.to_string(index=False))
    for line in unmatched_lines(comparison):
        print(line)
    slow = regressions(comparison, max_slowdown)
    for line in describe(slow):
        print(f"regression: {line}", file=sys.stderr)
    return 1 if len(slow) else 0


def run_job(smk) -> None:
    """The job of rule compare in rules/report.smk, called by `step_io.run_step`."""
    write(smk.input.new, smk.input.old, smk.output.table)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
