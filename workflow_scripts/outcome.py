"""How a cell ends when it cannot produce numbers: the status and reason recorded instead of a crash."""

import logging
import traceback

import torch

from workflow_scripts.engines.base import EngineUnavailable

log = logging.getLogger("outcome")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception is an out-of-memory error (CUDA, host allocator, MemoryError)."""
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    text = str(error)
    return "out of memory" in text.lower() or "DefaultCPUAllocator: can't allocate memory" in text


def classify(error: BaseException) -> tuple[str, str]:
    """(status, reason) for an exception raised while loading or running an engine."""
    if isinstance(error, EngineUnavailable):
        return "skipped", str(error)
    log.error("cell failed:\n%s", "".join(traceback.format_exception(error)))
    reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
    return ("oom" if is_out_of_memory(error) else "failed"), reason[:500]
