# Roofline calibration: the GPU's measured matmul rate and memory bandwidth, for the report's roofline.


rule calibrate:
    output:
        peaks="results/calibration/peaks.json",
    params:
        device=DEVICE,
    # a timing job: a GPU of its own, like the benchmark cells
    threads: MODEL_JOB_THREADS
    resources:
        **GPU_TYPE,
        gpu=MODEL_JOB_GPUS,
    benchmark:
        "results/benchmarks/calibration/calibrate.tsv"
    log:
        "results/logs/calibration/calibrate.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/calibrate.py"
