"""The timing loop shared by every engine: first call (compilation) apart, warm-up, then timed repeats."""

import contextlib
import itertools
import os
import time

import torch


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_first_call(run_batch, batch: dict, device: str) -> float:
    """Seconds of the first call: compilation and graph capture for compiled engines."""
    _synchronize(device)
    start = time.perf_counter()
    run_batch(batch)
    _synchronize(device)
    return time.perf_counter() - start


def time_iterations(run_batch, batches: list[dict], device: str, warmup_iters: int, min_iters: int,
                    min_seconds: float, repeats: int) -> list[dict]:
    """Per repeat, per iteration: host wall time (synchronised) and, on CUDA, GPU time from CUDA events.

    Each repeat runs until both `min_iters` iterations and `min_seconds` have passed, cycling through
    `batches` (which are already on the device, so input preparation is never timed).
    """
    cycle = itertools.cycle(batches)
    for _ in range(warmup_iters):
        run_batch(next(cycle))
    _synchronize(device)
    results = []
    for _ in range(repeats):
        wall_ms: list[float] = []
        gpu_ms: list[float] = []
        events = []
        repeat_start = time.perf_counter()
        while len(wall_ms) < min_iters or time.perf_counter() - repeat_start < min_seconds:
            batch = next(cycle)
            if device == "cuda":
                begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                begin.record()
                run_batch(batch)
                end.record()
                torch.cuda.synchronize()
                wall_ms.append((time.perf_counter() - t0) * 1000.0)
                events.append((begin, end))
            else:
                t0 = time.perf_counter()
                run_batch(batch)
                wall_ms.append((time.perf_counter() - t0) * 1000.0)
        gpu_ms = [begin.elapsed_time(end) for begin, end in events]
        results.append({"wall_ms": wall_ms, "gpu_ms": gpu_ms or None})
    return results


@contextlib.contextmanager
def pinned_to_one_core(enabled: bool, device: str):
    """For GPU cells: the timing process on one core (of those it may use) with one intra-op thread.

    A GPU cell's host time is one thread launching kernels, so where the scheduler puts that thread shows in
    the timings (config measurement.pin_cpu; benchmarks/stability_probe.py compares). Yields the core, or
    None where nothing is pinned (CPU cells need their threads). Entered after the engine has loaded and
    compiled, so no server or compile worker inherits the pin.
    """
    if not enabled or device != "cuda" or not hasattr(os, "sched_setaffinity"):
        yield None
        return
    allowed, threads = os.sched_getaffinity(0), torch.get_num_threads()
    core = max(allowed)  # the highest: core 0 usually takes the most interrupts
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    try:
        yield core
    finally:
        os.sched_setaffinity(0, allowed)
        torch.set_num_threads(threads)
