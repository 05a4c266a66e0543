"""The timing loop shared by every engine and by the side-by-side pairs.

First call (compilation) apart; then warm-up until steady: every distinct input batch once, at least a minimum
time, and until consecutive short windows agree (perf_analyzer's stability windows), up to a cap after which
the cell is measured anyway and flagged. Then repeats of many short windows; each window keeps its
per-iteration times, so statistics can treat the window as the unit (workflow_scripts/stats.py).
"""

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterator

import torch

from workflow_scripts.stats import median

def synchronize(device: str) -> None:
    """Wait for the GPU to finish queued work (CUDA); nothing on CPU."""
    if device == "cuda":
        torch.cuda.synchronize()


def time_first_call(run_batch, batch: dict, device: str) -> float:
    """Seconds of the first call: compilation and graph capture for compiled engines."""
    synchronize(device)
    start = time.perf_counter()
    run_batch(batch)
    synchronize(device)
    return time.perf_counter() - start


def time_window(run_batch, batches: Iterator[dict], device: str, seconds: float, min_iters: int) -> dict:
    """One window: calls until both `min_iters` calls and `seconds` have passed, each synchronised.

    `batches` is an endless iterator of batches already on the device (input preparation is never timed).
    Returns {"wall_ms": host wall time per call, "gpu_ms": CUDA-event time per call on CUDA, else None}.
    """
    wall_ms: list[float] = []
    events = []
    start = time.perf_counter()
    while len(wall_ms) < min_iters or time.perf_counter() - start < seconds:
        batch = next(batches)
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
    return {"wall_ms": wall_ms, "gpu_ms": [begin.elapsed_time(end) for begin, end in events] or None}


def warm_up(run_batch, batches: list[dict], device: str, measurement: dict) -> dict:
    """Untimed calls until the engine is steady; returns what happened, for the result's `warmup`.

    Runs every batch of `batches` once first (each distinct input shape: a CUDA-graphed engine records a graph
    per shape, which must not fall into a timed window), then windows of `window_seconds` until
    `warmup_seconds` have passed and the last `stable_windows` window medians lie within `stable_tolerance`
    (relative to the smallest) of each other, or until `warmup_max_seconds` (then steady is False: the cell
    is measured anyway and flagged). Returns {"seconds", "windows", "steady", "window_p50_ms"}.
    """
    start = time.perf_counter()
    for batch in batches:
        run_batch(batch)
    synchronize(device)
    cycle = itertools.cycle(batches)
    window_p50: list[float] = []
    steady = False
    while True:
        window = time_window(run_batch, cycle, device, measurement["window_seconds"],
                             measurement["min_window_iters"])
        window_p50.append(median(window["wall_ms"]))
        last = window_p50[-measurement["stable_windows"]:]
        steady = (len(last) == measurement["stable_windows"]
                  and max(last) - min(last) <= measurement["stable_tolerance"] * min(last))
        elapsed = time.perf_counter() - start
        if (steady and elapsed >= measurement["warmup_seconds"]) or elapsed >= measurement["warmup_max_seconds"]:
            return {"seconds": elapsed, "windows": len(window_p50), "steady": steady, "window_p50_ms": window_p50}


def time_windows(run_batch, batches: list[dict], device: str, measurement: dict,
                 after_window: Callable[[dict], None] | None = None) -> list[list[dict]]:
    """The timed part of a cell: `repeats` x `windows` windows (see time_window), cycling through `batches`.

    `after_window(window)` is called after every window with its time_window dict, outside it (the host-state
    monitor samples there, the console's progress line counts it). Returns repeats x windows of time_window's
    dicts.
    """
    cycle = itertools.cycle(batches)
    repeats = []
    for _ in range(measurement["repeats"]):
        windows = []
        for _ in range(measurement["windows"]):
            windows.append(time_window(run_batch, cycle, device, measurement["window_seconds"],
                                       measurement["min_window_iters"]))
            if after_window:
                after_window(windows[-1])
        repeats.append(windows)
    return repeats


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
