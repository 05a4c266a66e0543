# Stage 5: one timing job per engine x precision x batch size x sequence length x padding.


rule benchmark_cell:
    input:
        unpack(engine_artifacts),
        model_dir="results/model",
        tokens="results/tokens/seq{seq_len}.pt",
        reference="results/reference/seq{seq_len}.pt",
    output:
        result="results/bench/{engine}/{precision}/bs{batch_size}_seq{seq_len}_{padding}.json",
    params:
        device=DEVICE,
        measurement=MEASUREMENT,
        tolerance=precision_tolerance,
        engine_settings=engine_settings,
    threads: MODEL_JOB_THREADS
    resources:
        **SERVER_RESOURCES,
        **GPU_TYPE,
        gpu=MODEL_JOB_GPUS,
    benchmark:
        "results/benchmarks/bench/{engine}_{precision}_bs{batch_size}_seq{seq_len}_{padding}.tsv"
    log:
        "results/logs/bench/{engine}_{precision}_bs{batch_size}_seq{seq_len}_{padding}.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/benchmark.py"
