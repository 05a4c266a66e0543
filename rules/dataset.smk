# Stage 1: the evaluation sentences (GLUE SST-2, or the bundled sample when the hub is out of reach).


localrules:
    dataset,


rule dataset:
    output:
        rows="results/data/dataset.jsonl",
        info="results/data/dataset_info.json",
    params:
        settings=config["dataset"],
    benchmark:
        "results/benchmarks/dataset.tsv"
    log:
        "results/logs/dataset.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/dataset.py"
