"""Step 7: the report, results/report/report.md and a self-contained report.html (figures embedded).

Warnings come first (sample dataset, random weights, CPU run, mismatching or failed cells), then how this run's
numbers were measured (timing rule, host state), the Summary
against the targets, what to deploy per latency budget, what changed since an earlier run (compare_with), the
headline table in the original study's form, figures, serving, energy per inference, profiles, roofline, the
full tables and the environment: one module of this package per section, in SECTIONS order.
"""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import logging
from pathlib import Path

from workflow_scripts.experiment import report_settings
from workflow_scripts.report import (FIGURES, budgets, cells, comparison, context, correctness, energy,
                                     environment, figures, headline, measurement, overview, roofline, serving,
                                     summary, why)
from workflow_scripts.report.render import render
from workflow_scripts.step_io import add_config_arguments, experiment_from_args, run_step, setup_logging

log = logging.getLogger("report")
# The report's sections, in order; each turns the context into blocks (and draws its figures)
SECTIONS = [overview, measurement, summary, budgets, comparison, headline, figures, serving, energy, why, roofline,
            cells, correctness, environment]


def build(ctx: context.ReportContext, out_md: str, out_html: str) -> list[str]:
    """Draw every figure, write report.md and report.html; returns the warnings shown at the top."""
    blocks = [block for section in SECTIONS for block in section.blocks(ctx)]
    render(blocks, Path(ctx.figure_paths["latency_vs_batch"]).parent, out_md, out_html)
    return next((content for kind, content in blocks if kind == "warnings"), [])


def main(argv=None) -> None:
    """The command line: build the report from the aggregate, calibrate, dataset and model steps' files into
    --out-dir (report.md, report.html, figures/); baseline, targets and budgets come from the effective config."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", required=True, help="cells.csv from the aggregate step")
    parser.add_argument("--serving", required=True, help="serving.csv from the aggregate step")
    parser.add_argument("--profiles", required=True, help="profiles.csv from the aggregate step")
    parser.add_argument("--profile-tops", required=True, help="profile_tops.csv from the aggregate step")
    parser.add_argument("--peaks", required=True, help="peaks.json from the calibrate step")
    parser.add_argument("--dataset-info", required=True, help="dataset_info.json from the dataset step")
    parser.add_argument("--model-dir", required=True, help="the model step's folder")
    parser.add_argument("--pairs", help="pairs.csv from the pair_table step (side-by-side speedups)")
    parser.add_argument("--comparison", help="comparison.csv from the compare step (an earlier run)")
    parser.add_argument("--out-dir", required=True)
    add_config_arguments(parser, device=False)  # report.baseline, targets and budgets come from the config
    args = parser.parse_args(argv)
    report = report_settings(experiment_from_args(parser, args))
    setup_logging()
    out = Path(args.out_dir)
    ctx = context.load(args.table, args.serving, args.profiles, args.profile_tops, args.peaks, args.dataset_info,
                       args.model_dir, report["baseline"], report["targets"], report["budgets"],
                       {name: str(out / "figures" / f"{name}.png") for name in FIGURES}, args.comparison,
                       args.pairs)
    build(ctx, str(out / "report.md"), str(out / "report.html"))


def run_job(smk) -> None:
    """The job of rule report in rules/report.smk, called by `step_io.run_step`."""
    i = smk.input
    build(context.load(i.table, i.serving, i.profiles, i.profile_tops, i.peaks, i.dataset_info, i.model_dir,
                       smk.params.baseline, smk.params.targets, smk.params.budgets,
                       {name: smk.output[name] for name in FIGURES if name in smk.output.keys()},
                       i.get("comparison"), i.pairs),
          smk.output.md, smk.output.html)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
