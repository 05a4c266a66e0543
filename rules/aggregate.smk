# Stage 6: all cell results -> one tidy table.


rule aggregate:
    input:
        bench=BENCH_RESULTS,
        accuracy=ACCURACY_RESULTS,
    output:
        table="results/aggregate/cells.csv",
    log:
        "results/logs/aggregate.log",
    script:
        "../workflow_scripts/aggregate.py"
