# Stage 7: the report (Markdown + self-contained HTML); figures also feed `snakemake --report`.
import os

from workflow_scripts.report import FIGURES


# With compare_with: <results folder of an earlier run>, every cell in both is compared (p50 new/old).
if COMPARE_WITH_TABLE:

    rule compare:
        input:
            new=rules.aggregate.output.table,
            old=COMPARE_WITH_TABLE,
        output:
            table="results/report/comparison.csv",
        log:
            "results/logs/compare.log",
        conda:
            CONDA_ENV
        script:
            "../workflow_scripts/compare.py"


# The figures this run's plan can fill: the concurrency figure only with a load sweep, the profile breakdown
# only with profiles (without them a declared figure could only be drawn empty)
REPORT_FIGURES = [
    name
    for name in FIGURES
    if (name != "throughput_vs_concurrency" or LOAD_RESULTS) and (name != "kernel_breakdown" or PROFILE_RESULTS)
]


rule report:
    input:
        table=rules.aggregate.output.table,
        **({"comparison": rules.compare.output.table} if COMPARE_WITH_TABLE else {}),
        serving=rules.aggregate.output.serving,
        profiles=rules.aggregate.output.profiles,
        profile_tops=rules.aggregate.output.profile_tops,
        pairs=rules.pair_table.output.table,
        peaks=rules.calibrate.output.peaks,
        dataset_info=rules.dataset.output.info,
        model_dir=rules.model.output.model_dir,
    output:
        md="results/report/report.md",
        html="results/report/report.html",
        **{
            name: report(f"results/report/figures/{name}.png", caption=f"captions/{name}.rst", category=category)
            for name, category in FIGURES.items()
            if name in REPORT_FIGURES
        },
    params:
        baseline=REPORT["baseline"],
        targets=REPORT["targets"],
        budgets=REPORT["budgets"],
    benchmark:
        "results/benchmarks/report.tsv"
    log:
        "results/logs/report.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/report/build.py"


# With strict=true, a separate job fails when any cell is mismatch or failed, or (with compare_with) slower
# than the earlier run by more than report.max_slowdown, so the report stays on disk.
rule strict_check:
    input:
        table=rules.aggregate.output.table,
        report=rules.report.output.md,
        **({"comparison": rules.compare.output.table} if COMPARE_WITH_TABLE else {}),
    output:
        passed="results/report/strict_check.passed",
    params:
        max_slowdown=config["report"]["max_slowdown"],
    benchmark:
        "results/benchmarks/strict_check.tsv"
    log:
        "results/logs/strict_check.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/strict_check.py"


onsuccess:
    # The main command's closing line: where to look (where this run made or kept the report)
    if os.path.exists(rules.report.output.html):
        logger.info(f"inferbench: the report is {os.path.abspath(rules.report.output.html)}")


onerror:
    # A failed or interrupted run: what to do next, once, after Snakemake's own error lines
    logger.error("inferbench: the run did not finish; the failed jobs and their logs (results/logs/) are named "
                 "above. Finished results are kept: after a fix, or after an interruption, the same command runs "
                 "only what is missing.")
