"""`strict=true`: fail the run when any cell is mismatch or failed (the report is already written)."""

import argparse
import sys

import pandas as pd

from workflow_scripts.results import atomic_write_text

UNTRUSTED = ("mismatch", "failed")


def check(table_path: str, passed_path: str | None = None) -> int:
    table = pd.read_csv(table_path)
    bad = table[table.status.isin(UNTRUSTED)]
    if len(bad):
        for row in bad.itertuples():
            print(f"strict: {row.engine}/{row.precision}/bs{row.batch_size}/seq{row.seq_len}/{row.padding} is "
                  f"{row.status}: {row.reason}", file=sys.stderr)
        print(f"strict: {len(bad)} cell(s) are {' or '.join(UNTRUSTED)}; see results/report/report.md",
              file=sys.stderr)
        return 1
    if passed_path:
        atomic_write_text(passed_path, f"all {len(table)} cells are trustworthy\n")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("table")
    return check(parser.parse_args(argv).table)


if __name__ == "__main__":
    if "snakemake" in globals():
        smk = snakemake  # noqa: F821
        sys.stderr = open(smk.log[0], "w")
        code = check(smk.input.table, smk.output.passed)
        sys.stderr.close()
        if code:
            print(open(smk.log[0]).read(), file=sys.__stderr__)
        sys.exit(code)
    else:
        sys.exit(main())
