"""A profiled cell: the engine loaded and warmed up exactly as a benchmark cell is, then a few iterations
for the profiler. Used in-process (PyTorch profiler) and in the process Nsight Systems launches."""

import contextlib
import itertools
import time

import torch

from workflow_scripts.engines import create
from workflow_scripts.measure import synchronize
from workflow_scripts.tokens import batch_rows, load_tokens, make_batch

# NVTX range around the measured iterations: Nsight Systems captures only inside it (--capture-range=nvtx)
MEASURED_RANGE = "inferbench_measured"


@contextlib.contextmanager
def loaded_engine(cell: dict, model_dir: str, tokens_path: str, artifacts: dict, engine_settings: dict,
                  result_path: str, max_distinct_batches: int | None):
    """(engine, batches) with the engine loaded; the engine is closed on the way out, also after errors.
    max_distinct_batches None: one batch (every batch of a cell padded to max_length runs the same kernels)."""
    device = cell["device"]
    tokens = load_tokens(tokens_path)
    rows = batch_rows(tokens["input_ids"].shape[0], cell["batch_size"], max_distinct_batches or 1)
    engine = create(cell["engine"], model_dir=model_dir, device=device, precision=cell["precision"],
                    settings=engine_settings, artifacts=artifacts, result_path=result_path)
    try:
        batches = [make_batch(tokens, r, cell["padding"], engine.input_device or device) for r in rows]
        engine.load()
        yield engine, batches
    finally:
        engine.close()


def warm_up(engine, batches: list[dict], device: str, iterations: int) -> None:
    """The first (compiling) call and the warm-up, so the profile shows the steady state only."""
    with nvtx_range("warmup", device):
        for batch in itertools.islice(itertools.cycle(batches), max(1, iterations)):
            engine.run(batch["input_ids"], batch["attention_mask"])
        synchronize(device)


def profiled_iterations(engine, batches: list[dict], device: str, iterations: int, label=None) -> float:
    """Run `iterations` synchronised calls, each in an NVTX range and (if given) a profiler label.
    Returns the wall time per iteration in ms (profiler overhead included: never a benchmark number)."""
    cycle = itertools.cycle(batches)
    with nvtx_range(MEASURED_RANGE, device):
        start = time.perf_counter()
        for _ in range(iterations):
            batch = next(cycle)
            with nvtx_range("iteration", device), (label() if label else contextlib.nullcontext()):
                engine.run(batch["input_ids"], batch["attention_mask"])
                synchronize(device)
        elapsed = time.perf_counter() - start
    return 1000.0 * elapsed / iterations


@contextlib.contextmanager
def nvtx_range(name: str, device: str):
    """An NVTX range around the block on CUDA (what Nsight Systems shows and captures); nothing on CPU."""
    if device != "cuda":
        yield
        return
    torch.cuda.nvtx.range_push(name)
    try:
        yield
    finally:
        torch.cuda.nvtx.range_pop()

