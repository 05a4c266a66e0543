"""What machine and software produced a result: recorded beside every number."""

import hashlib
import json
import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path

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
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info(device: str) -> dict:
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


def capture(device: str, config_slice) -> dict:
    """Named facts only, never the environment as a whole: tokens and secrets (HF_TOKEN, cloud keys) live
    there, and this lands in every result file."""
    import torch
    import transformers

    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "git_commit": git_commit(),
        "config_hash": config_hash(config_slice),
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        **gpu_info(device),
    }
