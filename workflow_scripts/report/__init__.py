"""Step 7, the report: results/report/report.md, a self-contained report.html and the figures.

One module per section (overview, measurement, summary, budgets, comparison, headline, figures, serving,
energy, why, roofline, cells, correctness, environment), each turning the one `context.ReportContext` of the
run into blocks that `render` writes as Markdown and HTML; `build` is the step. Importing this package stays cheap (the rules read FIGURES).
"""

# The report's figures: name (results/report/figures/<name>.png, rules/captions/<name>.rst) -> category in
# Snakemake's own report
FIGURES = {
    "latency_vs_batch": "Latency",
    "throughput_vs_batch": "Throughput",
    "speedup": "Speedup",
    "pareto": "Latency budgets",
    "throughput_vs_concurrency": "Serving",
    "kernel_breakdown": "Profiles",
}
