"""`strict=true`: fail the run when any cell is mismatch or failed, or (with `compare_with`) slower than the
earlier run by more than `report.max_slowdown` (the report is already written)."""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import sys

import pandas as pd

from workflow_scripts.compare import describe, regressions
from workflow_scripts.results import atomic_write_text
from workflow_scripts.step_io import add_config_arguments, experiment_from_args, run_step
from workflow_scripts.wording import count, plural

UNTRUSTED = ("mismatch", "failed")


def check(table_path: str, passed_path: str | None = None, comparison_path: str | None = None,
          max_slowdown: float = 0.05) -> int:
    """0 when every cell is trustworthy and none regressed (then passed_path is written), else 1 with each
    problem on stderr. comparison_path: the compare step's CSV (None: no earlier run)."""
    table = pd.read_csv(table_path)
    bad = table[table.status.isin(UNTRUSTED)]
    for row in bad.itertuples():
        print(f"strict: {row.engine}/{row.precision}/bs{row.batch_size}/seq{row.seq_len}/{row.padding} is "
              f"{row.status}: {row.reason}", file=sys.stderr)
    if len(bad):
        print(f"strict: {count(len(bad), 'cell')} {plural(len(bad), 'is')} {' or '.join(UNTRUSTED)}; see "
              "results/report/report.md",
              file=sys.stderr)
    slow = regressions(pd.read_csv(comparison_path), max_slowdown) if comparison_path else pd.DataFrame()
    for line in describe(slow):
        print(f"strict: {line}: slower than the earlier run by more than {max_slowdown:.0%}", file=sys.stderr)
    if len(bad) or len(slow):
        return 1
    if passed_path:
        compared = " and none slower than the earlier run" if comparison_path else ""
        cells = f"all {len(table)} cells are" if len(table) != 1 else "the one cell is"
        atomic_write_text(passed_path, f"{cells} trustworthy{compared}\n")
    return 0


def main(argv=None) -> int:
    """The command line: check(table) with the effective config's report.max_slowdown unless --max-slowdown
    gives one; returns its exit status (0 trustworthy, 1 not)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("table")
    parser.add_argument("--comparison", help="comparison.csv of the compare step")
    parser.add_argument("--max-slowdown", type=float, help="over report.max_slowdown")
    add_config_arguments(parser, device=False)
    args = parser.parse_args(argv)
    experiment = experiment_from_args(parser, args)
    max_slowdown = experiment["report"]["max_slowdown"] if args.max_slowdown is None else args.max_slowdown
    return check(args.table, comparison_path=args.comparison, max_slowdown=max_slowdown)


def run_job(smk) -> int:
    """The job of rule strict_check (rules/report.smk; called by `step_io.run_step`): 1 fails it, its problems
    on stderr, which reaches the console and the job's log."""
    return check(smk.input.table, smk.output.passed, smk.input.get("comparison"), smk.params.max_slowdown)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
