# Stage 4: exported models, verified against eager before any engine uses them.
from glob import glob

from snakemake.logging import logger

from workflow_scripts.checksums import outdate_corrupt_exports

# A corrupted export (its checksum no longer matches its sidecar) is marked outdated while the workflow is
# planned, so that this run exports it again and reruns what used it. Only the main process checks: jobs on a
# cluster parse this file too, while other jobs may be writing exports.
if workflow.is_main_process:
    for message in outdate_corrupt_exports(sorted(glob(ARTIFACT_PATHS["torchscript"].format(precision="*",
                                                                                        seq_len="*")))):
        logger.warning(f"Corrupted export: {message}")


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
