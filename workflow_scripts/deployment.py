"""What a run needs outside Python, checked before any job: the cluster's commands for the Slurm executor,
Apptainer and the pipeline's image for `--sdm apptainer`, Apptainer for serving from Triton's official image. Without these checks a run on a machine without
Slurm waited forever for jobs that were never submitted, and a dry run named only Apptainer."""

import shutil
from pathlib import Path

# the executor plugin submits with sbatch, watches with sacct (or squeue) and cancels with scancel
SLURM_COMMANDS = ("sbatch", "sacct", "squeue", "scancel")


def missing(executor: str | None, apptainer: bool, container: str, workdir: str | Path = ".",
            serves_from_image: bool = False) -> list[str]:
    """One line per missing piece (empty: nothing is missing).

    executor: the Snakemake executor's name (`slurm`, `local`, ...) or None when unknown (a dry run);
    apptainer: whether jobs run with `--sdm apptainer`; container: config `container` (a local image path,
    relative to the working directory, or a URI such as docker://... that Apptainer pulls);
    serves_from_image: whether served engines run Triton's image (`triton.launcher: apptainer`), which this
    machine pulls (rule pull_triton_image) and the jobs start."""
    problems = []
    if serves_from_image and not apptainer and not shutil.which("apptainer"):
        problems.append("triton.launcher: apptainer serves from Triton's image, which needs `apptainer` on PATH "
                        "(or use triton.launcher: local or auto, the tritonserver bundled in nvidia-pytriton)")
    if executor == "slurm":
        absent = [name for name in SLURM_COMMANDS if not shutil.which(name)]
        if absent:
            problems.append(f"the Slurm executor needs {', '.join(absent)} on PATH (not found: is this a Slurm "
                            "login node? Without a cluster, run without the profile: snakemake --cores all)")
    if apptainer:
        if not shutil.which("apptainer"):
            problems.append("--sdm apptainer (the Slurm profile's default) needs `apptainer` on PATH (often "
                            "`module load apptainer`), or run the jobs in the conda environment: --sdm conda")
        if "://" not in container and not (Path(workdir) / container).exists():
            problems.append(f"the image `container: {container}` does not exist: build it with `apptainer build "
                            f"{container} envs/inferbench.def` (see README, Running on a cluster)")
    return problems
