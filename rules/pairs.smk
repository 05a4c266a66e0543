# Stage 5b: side-by-side pairs: one job per engine x precision x batch size (pairs.*) against report.baseline,
# both engines in one process; then one table of all pairs for the report.


rule pair:
    input:
        unpack(pair_artifacts),
        model_dir="results/model",
        tokens="results/tokens/seq{seq_len}.pt",
    output:
        result="results/pairs/{engine}/{precision}/bs{batch_size}_seq{seq_len}_{padding}.json",
    params:
        device=DEVICE,
        baseline=BASELINE,
        measurement=MEASUREMENT,
        pairing=PAIRING,
        engine_settings=pair_engine_settings,
        artifact_kinds=pair_artifact_kinds,
    threads: MODEL_JOB_THREADS
    resources:
        **SERVER_RESOURCES,
        **GPU_TYPE,
        gpu=MODEL_JOB_GPUS,
    benchmark:
        "results/benchmarks/pairs/{engine}_{precision}_bs{batch_size}_seq{seq_len}_{padding}.tsv"
    log:
        "results/logs/pairs/{engine}_{precision}_bs{batch_size}_seq{seq_len}_{padding}.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/pair.py"


rule pair_table:
    input:
        pairs=PAIR_RESULTS,
    output:
        table="results/aggregate/pairs.csv",
    benchmark:
        "results/benchmarks/pair_table.tsv"
    log:
        "results/logs/pair_table.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/pair_table.py"
