# Stage 2: the model and tokenizer, saved once; every later stage loads this folder.


localrules:
    model,


rule model:
    input:
        rows="results/data/dataset.jsonl",
    output:
        model_dir=directory("results/model"),
    params:
        settings=config["model"],
    benchmark:
        "results/benchmarks/model.tsv"
    log:
        "results/logs/model.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/model.py"
