# Stage 7: the report (Markdown + self-contained HTML); figures also feed `snakemake --report`.


rule report:
    input:
        table="results/aggregate/cells.csv",
        serving="results/aggregate/serving.csv",
        profiles="results/aggregate/profiles.csv",
        profile_tops="results/aggregate/profile_tops.csv",
        peaks="results/calibration/peaks.json",
        dataset_info="results/data/dataset_info.json",
        model_dir="results/model",
    output:
        md="results/report/report.md",
        html="results/report/report.html",
        latency_vs_batch=report(
            "results/report/figures/latency_vs_batch.png",
            caption="captions/latency_vs_batch.rst",
            category="Latency",
        ),
        throughput_vs_batch=report(
            "results/report/figures/throughput_vs_batch.png",
            caption="captions/throughput_vs_batch.rst",
            category="Throughput",
        ),
        speedup=report(
            "results/report/figures/speedup.png",
            caption="captions/speedup.rst",
            category="Speedup",
        ),
        throughput_vs_concurrency=report(
            "results/report/figures/throughput_vs_concurrency.png",
            caption="captions/throughput_vs_concurrency.rst",
            category="Serving",
        ),
        kernel_breakdown=report(
            "results/report/figures/kernel_breakdown.png",
            caption="captions/kernel_breakdown.rst",
            category="Profiles",
        ),
    params:
        baseline=config["report"]["baseline"],
        targets=config["report"]["targets"],
    log:
        "results/logs/report.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/report.py"


# With strict=true, a separate job fails when any cell is mismatch or failed, so the report stays on disk.
rule strict_check:
    input:
        table="results/aggregate/cells.csv",
        report="results/report/report.md",
    output:
        passed="results/report/strict_check.passed",
    log:
        "results/logs/strict_check.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/strict_check.py"
