# Roofline calibration: the GPU's measured matmul rate and memory bandwidth, for the report's roofline.


rule calibrate:
    output:
        peaks="results/calibration/peaks.json",
    params:
        device=DEVICE,
    # a timing job: it takes every core like the benchmark cells, so none runs beside it on the GPU
    threads: TIMING_THREADS
    resources:
        **GPU_TYPE,
    log:
        "results/logs/calibration/calibrate.log",
    conda:
        CONDA_ENV
    script:
        "../workflow_scripts/calibrate.py"
