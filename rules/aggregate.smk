# Stage 6: all cell results -> tidy tables (cells, served load levels, profiles).


rule aggregate:
    input:
        bench=BENCH_RESULTS,
        accuracy=ACCURACY_RESULTS,
        load=LOAD_RESULTS,
        profiles=PROFILE_RESULTS,
        pieces=[table for piece in config["merge_pieces"] for table in piece_tables(piece)],
    output:
        table="results/aggregate/cells.csv",
        serving="results/aggregate/serving.csv",
        profiles="results/aggregate/profiles.csv",
        profile_tops="results/aggregate/profile_tops.csv",
    params:
        pieces=config["merge_pieces"],
        engines=ENGINE_ROLES,
    benchmark:
        "results/benchmarks/aggregate.tsv"
    log:
        "results/logs/aggregate.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/aggregate.py"
