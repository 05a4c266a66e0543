# Stage 6: all cell results -> one tidy table.


rule aggregate:
    input:
        bench=BENCH_RESULTS,
        accuracy=ACCURACY_RESULTS,
        load=LOAD_RESULTS,
    output:
        table="results/aggregate/cells.csv",
        serving="results/aggregate/serving.csv",
    log:
        "results/logs/aggregate.log",
    script:
        "../workflow_scripts/aggregate.py"
