"""What machine and software produced a result: recorded beside every number."""

import hashlib
import json
import os
import platform
import socket
import subprocess
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from workflow_scripts.placement import compact_cores, placed_unix

REPO_ROOT = Path(__file__).resolve().parent.parent


def config_hash(config_slice) -> str:
    """Stable short hash of the config values a step used."""
    blob = json.dumps(config_slice, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def resolve_device(requested: str) -> str:
    """`auto` means CUDA when torch sees a GPU, else CPU; an explicit `cuda` without a GPU is an error."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config device is 'cuda' but torch sees no CUDA device on this node")
    return requested


def git_commit() -> str | None:
    """The checkout's commit (with -dirty when tracked files changed), or None outside git."""
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor name elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info(device: str) -> dict:
    """gpu_name, gpu_uuid, gpu_driver and cuda version of the current CUDA device (all None on CPU)."""
    if device != "cuda":
        return {"gpu_name": None, "gpu_uuid": None, "gpu_driver": None, "cuda": None}
    import torch

    info = {"gpu_name": torch.cuda.get_device_name(), "gpu_uuid": gpu_uuid(), "cuda": torch.version.cuda,
            "gpu_driver": None}
    try:
        import pynvml

        pynvml.nvmlInit()
        info["gpu_driver"] = pynvml.nvmlSystemGetDriverVersion()
        pynvml.nvmlShutdown()
    except Exception:  # NVML missing in some containers; the driver is then unknown, not fatal
        pass
    return info


def gpu_uuid() -> str | None:
    """The card itself (as nvidia-smi -L names it): pieces of one sweep may run on several cards of one model."""
    import torch

    uuid = getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "uuid", None)
    return f"GPU-{uuid}" if uuid else None


def process_started_unix() -> float | None:
    """When this process started (Unix time, 10 ms resolution): its age from /proc (clock ticks since boot,
    against the boot-time clock; /proc/stat's btime is whole seconds) taken from now. None without /proc."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - age
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def placement() -> dict:
    """The card and cores this job ran on (set per job by workflow_scripts.placement on a local multi-GPU
    run, by Slurm on a cluster); when its process started, took its card and made this record (Unix time;
    Snakemake touches outputs later, so a result's mtime is not when its job ended)."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return {"cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "cpu_affinity": compact_cores(cores),
            "process_started_unix": process_started_unix(), "placed_unix": placed_unix(),
            "recorded_unix": time.time()}


def capture(device: str, config_slice) -> dict:
    """Named facts only, never the environment as a whole: tokens and secrets (HF_TOKEN, cloud keys) live
    there, and this lands in every result file."""
    import torch

    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": version("transformers"),  # without importing it: engines that need none stay fast
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "git_commit": git_commit(),
        "config_hash": config_hash(config_slice),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        **gpu_info(device),
        **placement(),
    }
