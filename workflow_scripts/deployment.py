"""What a run needs outside Python, checked before any job: the cluster's commands for the Slurm executor,
Apptainer and the pipeline's image for `--sdm apptainer`, Apptainer for serving from Triton's official image. Without these checks a run on a machine without
Slurm waited forever for jobs that were never submitted, and a dry run named only Apptainer.
Optional tools that the settings name (nsys, perf_analyzer) are warned about instead (absent_tools): the jobs
that need them still run and record why they could not use them."""

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


def nsys_missing(executable: str) -> str | None:
    """Why Nsight Systems' `executable` cannot be run here (not found), or None."""
    if shutil.which(executable):
        return None
    return (f"nsys not found (profiling.nsys.executable: {executable}); on clusters it often comes from "
            "`module load nsight-systems` or the CUDA toolkit's bin folder")


def absent_tools(config: dict, nsys_profiles: bool) -> list[str]:
    """One console line per optional tool the run's settings name that this machine lacks: what happens to the
    jobs that need it, and the fix. Warnings, not refusals: those jobs still run and record why (a cluster's
    jobs may run where the tool is).

    config: the effective config (device resolved); nsys_profiles: whether Nsight Systems profiles of GPU
    cells are planned."""
    from workflow_scripts import engines

    lines = []
    reason = nsys_missing(config["profiling"]["nsys"]["executable"]) if nsys_profiles else None
    if reason:
        lines.append(f"Nsight Systems profiles will be recorded as skipped: {reason}; or set "
                     "profiling.nsys.enabled: false")
    # served engines whose settings name perf_analyzer as their load client (auto falls back by itself)
    named = {}
    for name in config["sweep"]["engines"]:
        settings = engines.settings_from_config(name, config)
        if settings.get("client") == "perf_analyzer":
            key = ".".join(engines.settings_section(name) + engines.setting_keys(name)["client"])
            named.setdefault((key, settings["perf_analyzer"]["executable"]), []).append(name)
    for (key, executable), names in named.items():
        from workflow_scripts.serving.perf_analyzer import unusable_reason

        reason = unusable_reason(executable)
        if reason:
            lines.append(f"{key} is perf_analyzer, which cannot run here ({reason}): the cells and load levels of "
                         f"{', '.join(names)} will fail; set {key}: auto (the Python client where perf_analyzer "
                         "cannot run) or python")
    return lines
