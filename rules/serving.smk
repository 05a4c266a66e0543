# Serving with Triton: model repositories, the server image, and the concurrency sweep.
# The per-batch-size served cells are ordinary benchmark cells (rules/benchmark.smk).


localrules:
    pull_triton_image,


rule pull_triton_image:
    output:
        sif=config["triton"]["apptainer"]["sif"],
    params:
        image=config["triton"]["apptainer"]["image"],
    benchmark:
        "results/benchmarks/pull_triton_image.tsv"
    log:
        "results/logs/pull_triton_image.log",
    shell:
        "apptainer pull {output.sif} {params.image} > {log} 2>&1"


def repository_inputs(wildcards):
    inputs = {"model_dir": "results/model"}
    if wildcards.backend == "pytorch":
        inputs["torchscript"] = rules.export_torchscript.output.module.format(**wildcards)
    return inputs


rule triton_repository:
    input:
        unpack(repository_inputs),
    output:
        repository=directory("results/triton/{backend}/{precision}/seq{seq_len}"),
    params:
        device=DEVICE,
        settings=config["triton"]["repository"],
    wildcard_constraints:
        backend="python|pytorch",
    benchmark:
        "results/benchmarks/triton_repository/{backend}_{precision}_seq{seq_len}.tsv"
    log:
        "results/logs/triton_repository/{backend}_{precision}_seq{seq_len}.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/serving/model_repository.py"


rule load_sweep:
    input:
        unpack(engine_artifacts),
        model_dir="results/model",
        tokens="results/tokens/seq{seq_len}.pt",
    output:
        expand(
            "results/serving/{{engine}}/{{precision}}/seq{{seq_len}}_c{concurrency}.json",
            concurrency=config["triton"]["load"]["concurrency"],
        ),
    params:
        device=DEVICE,
        load=config["triton"]["load"],
        engine_settings=engine_settings,
    threads: MODEL_JOB_THREADS
    resources:
        **SERVER_RESOURCES,
        **GPU_TYPE,
        gpu=MODEL_JOB_GPUS,
    benchmark:
        "results/benchmarks/serving/{engine}_{precision}_seq{seq_len}.tsv"
    log:
        "results/logs/serving/{engine}_{precision}_seq{seq_len}.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/load_sweep.py"
