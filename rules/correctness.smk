# Correctness: the fp32 eager reference logits, and each engine x precision over the whole split.


rule reference:
    input:
        model_dir="results/model",
        tokens="results/tokens/seq{seq_len}.pt",
    output:
        reference="results/reference/seq{seq_len}.pt",
    params:
        device=DEVICE,
        batch_size=config["correctness"]["batch_size"],
    threads: MODEL_JOB_THREADS
    resources:
        **GPU_TYPE,
        gpu=MODEL_JOB_GPUS,
    benchmark:
        "results/benchmarks/reference/seq{seq_len}.tsv"
    log:
        "results/logs/reference/seq{seq_len}.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/reference.py"


rule accuracy:
    input:
        unpack(engine_artifacts),
        model_dir="results/model",
        tokens="results/tokens/seq{seq_len}.pt",
        reference="results/reference/seq{seq_len}.pt",
    output:
        result="results/accuracy/{engine}/{precision}/seq{seq_len}_{padding}.json",
    params:
        device=DEVICE,
        batch_size=config["correctness"]["batch_size"],
        tolerance=precision_tolerance,
        engine_settings=engine_settings,
    threads: MODEL_JOB_THREADS
    resources:
        **SERVER_RESOURCES,
        **GPU_TYPE,
        gpu=MODEL_JOB_GPUS,
    benchmark:
        "results/benchmarks/accuracy/{engine}_{precision}_seq{seq_len}_{padding}.tsv"
    log:
        "results/logs/accuracy/{engine}_{precision}_seq{seq_len}_{padding}.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/accuracy.py"
