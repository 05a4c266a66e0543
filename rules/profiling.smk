# Stage 5b: why an engine is fast. Profiling jobs are separate from timing jobs, so no profiler overhead
# reaches a timing; config `profiling` picks the cells (default: smallest and largest batch).


rule profile_torch:
    input:
        unpack(engine_artifacts),
        model_dir="results/model",
        tokens="results/tokens/seq{seq_len}.pt",
    output:
        summary="results/profile/torch/{engine}/{precision}/bs{batch_size}_seq{seq_len}_{padding}.json",
        tables=directory("results/profile/torch/{engine}/{precision}/bs{batch_size}_seq{seq_len}_{padding}"),
    params:
        device=DEVICE,
        settings=profile_settings,
        engine_settings=engine_settings,
    threads: MODEL_JOB_THREADS
    resources:
        **SERVER_RESOURCES,
        **GPU_TYPE,
        gpu=MODEL_JOB_GPUS,
    benchmark:
        "results/benchmarks/profile/torch_{engine}_{precision}_bs{batch_size}_seq{seq_len}_{padding}.tsv"
    log:
        "results/logs/profile/torch_{engine}_{precision}_bs{batch_size}_seq{seq_len}_{padding}.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/profiling/torch_profile.py"


rule profile_nsys:
    input:
        unpack(engine_artifacts),
        model_dir="results/model",
        tokens="results/tokens/seq{seq_len}.pt",
    output:
        summary="results/profile/nsys/{engine}/{precision}/bs{batch_size}_seq{seq_len}_{padding}.json",
        reports=directory("results/profile/nsys/{engine}/{precision}/bs{batch_size}_seq{seq_len}_{padding}"),
    params:
        device=DEVICE,
        settings=profile_settings,
        engine_settings=engine_settings,
    threads: MODEL_JOB_THREADS
    resources:
        **SERVER_RESOURCES,
        **NSYS_RESOURCES,
        **GPU_TYPE,
        gpu=MODEL_JOB_GPUS,
    benchmark:
        "results/benchmarks/profile/nsys_{engine}_{precision}_bs{batch_size}_seq{seq_len}_{padding}.tsv"
    log:
        "results/logs/profile/nsys_{engine}_{precision}_bs{batch_size}_seq{seq_len}_{padding}.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/profiling/nsys_profile.py"
