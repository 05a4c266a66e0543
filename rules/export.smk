# Stage 4: exported models, verified against eager before any engine uses them.


rule export_torchscript:
    input:
        model_dir="results/model",
        tokens="results/tokens/seq{seq_len}.pt",
    output:
        module="results/export/torchscript/{precision}/seq{seq_len}.pt",
        info="results/export/torchscript/{precision}/seq{seq_len}.json",
    params:
        device=DEVICE,
        tolerance=tolerance,
    threads: TIMING_THREADS
    log:
        "results/logs/export/torchscript_{precision}_seq{seq_len}.log",
    script:
        "../workflow_scripts/export.py"
