# Stage 3: token ids per sequence length (padded to seq_len; dynamic padding is cut from these per batch).


rule tokenize:
    input:
        model_dir="results/model",
        rows="results/data/dataset.jsonl",
    output:
        tokens="results/tokens/seq{seq_len}.pt",
    benchmark:
        "results/benchmarks/tokenize/seq{seq_len}.tsv"
    log:
        "results/logs/tokenize/seq{seq_len}.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/tokens.py"
