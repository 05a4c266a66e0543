# Stage 4: exported models, verified against eager before any engine uses them.
from workflow_scripts.checksums import corrupt_exports


rule export_torchscript:
    input:
        model_dir="results/model",
        tokens="results/tokens/seq{seq_len}.pt",
    output:
        module="results/export/torchscript/{precision}/seq{seq_len}.pt",
        info="results/export/torchscript/{precision}/seq{seq_len}.json",
    params:
        device=DEVICE,
        tolerance=precision_tolerance,
    threads: MODEL_JOB_THREADS
    resources:
        **GPU_TYPE,
        gpu=MODEL_JOB_GPUS,
    benchmark:
        "results/benchmarks/export/torchscript_{precision}_seq{seq_len}.tsv"
    log:
        "results/logs/export/torchscript_{precision}_seq{seq_len}.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/export.py"


# A corrupted export (its checksum no longer matches its sidecar) is named when the workflow is planned.
# Planning only reads, so it cannot mark the file outdated: the jobs that use it refuse it and mark it
# (the next run exports it again), or `--forcerun` it now. Only the main process checks (jobs on a
# cluster parse this file too, while other jobs may be writing exports).
if workflow.is_main_process:
    _exports = {rules.export_torchscript.output.module.format(precision=cell["precision"], seq_len=cell["seq_len"])
                for cell in cells(SWEEP)}
    for _path, _reason in corrupt_exports(sorted(_exports)).items():
        logger.warning(f"Corrupted export: {_reason}. The jobs that use it refuse it and mark it outdated, so "
                       f"that the next run exports it again; to export it again in this run, add --forcerun {_path}")
