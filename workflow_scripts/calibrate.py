"""Roofline calibration: the GPU's measured dense matmul rate and memory bandwidth, in the same run as the cells.

Matmul: a large square GEMM per precision (bf16, fp16, TF32, and fp32 with TF32 off as the pipeline's fp32
cells run), timed with CUDA events after warm-up: TFLOP/s = 2·M·N·K / t. Bandwidth: a large
device-to-device copy, counting each byte read and written: GB/s = 2 · bytes / t. Without a CUDA GPU
the result says `skipped` and why, so the report can say so.
"""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import logging
from datetime import datetime, timezone

import torch

from workflow_scripts.environment import gpu_info
from workflow_scripts.results import write_json
from workflow_scripts.step_io import add_config_arguments, experiment_from_args, run_step, setup_logging

log = logging.getLogger("calibrate")
GEMM_SIZE = 8192
GEMM_WARMUP, GEMM_ITERS = 5, 30
COPY_BYTES = 2 * 2**30
COPY_WARMUP, COPY_ITERS = 3, 30
# precision -> (dtype, TF32 allowed); fp32 is what the fp32 cells run (TF32 off, as the reference)
MATMUL_PRECISIONS = {"bf16": (torch.bfloat16, False), "fp16": (torch.float16, False),
                     "tf32": (torch.float32, True), "fp32": (torch.float32, False)}


def time_ms(call, warmup: int, iters: int) -> float:
    """Mean milliseconds per call over `iters` back-to-back calls (GPU time between two CUDA events)."""
    for _ in range(warmup):
        call()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    begin.record()
    for _ in range(iters):
        call()
    end.record()
    torch.cuda.synchronize()
    return begin.elapsed_time(end) / iters


def matmul_tflops(dtype: torch.dtype, allow_tf32: bool, size: int = GEMM_SIZE) -> dict:
    """Dense matmul rate (TFLOP/s) of a size³ GEMM in `dtype` on CUDA (TF32 as asked), with its size and
    milliseconds."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    try:
        a = torch.randn(size, size, device="cuda", dtype=dtype)  # random data: zeros run faster
        b = torch.randn(size, size, device="cuda", dtype=dtype)
        out = torch.empty(size, size, device="cuda", dtype=dtype)
        # fewer iterations where one product takes long (fp32 without TF32), so each rate takes < 2 s
        ms = time_ms(lambda: torch.mm(a, b, out=out), 1, 1)
        iters = max(5, min(GEMM_ITERS, int(1000 / max(ms, 1e-3))))
        ms = time_ms(lambda: torch.mm(a, b, out=out), GEMM_WARMUP, iters)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    del a, b, out
    torch.cuda.empty_cache()
    return {"tflops": 2 * size**3 / (ms * 1e-3) / 1e12, "ms": ms, "m": size, "n": size, "k": size,
            "iters": iters}


def copy_bandwidth(nbytes: int = COPY_BYTES) -> dict:
    """Device-to-device copy bandwidth (GB/s, bytes read + written) of an nbytes buffer, with its milliseconds."""
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda").fill_(1)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), COPY_WARMUP, COPY_ITERS)
    del src, dst
    torch.cuda.empty_cache()
    return {"gb_per_s": 2 * nbytes / (ms * 1e-3) / 1e9, "ms": ms, "buffer_bytes": nbytes, "iters": COPY_ITERS}


def measure_peaks() -> dict:
    """Matmul rates per precision and the copy bandwidth of the current CUDA device."""
    details = {name: matmul_tflops(dtype, tf32) for name, (dtype, tf32) in MATMUL_PRECISIONS.items()}
    copy = copy_bandwidth()
    for name, result in details.items():
        log.info("matmul %s: %.1f TFLOP/s", name, result["tflops"])
    log.info("device-to-device copy: %.0f GB/s", copy["gb_per_s"])
    return {"matmul_tflops": {name: result["tflops"] for name, result in details.items()},
            "matmul": details, "copy_gb_per_s": copy["gb_per_s"], "copy": copy}


def calibrate(device: str, out_path: str) -> dict:
    """Measure the GPU's peaks and write peaks.json (status skipped with the reason on CPU, failed on an error);
    returns it."""
    result = {"status": "ok", "reason": None, "device": device, "torch": torch.__version__,
              "cuda": torch.version.cuda, "gpu_name": None, "gpu_uuid": None,
              "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "matmul_tflops": None, "copy_gb_per_s": None}
    if device == "cpu" or not torch.cuda.is_available():
        result.update(status="skipped", device="cpu",
                      reason="no CUDA GPU" if device != "cpu" else "no CUDA GPU (config device: cpu)")
    else:
        gpu = gpu_info("cuda")  # the same names and card UUID as every cell result
        result.update(device="cuda", gpu_name=gpu["gpu_name"], gpu_uuid=gpu["gpu_uuid"])
        try:
            result.update(measure_peaks())
        except Exception as error:  # recorded; the report says calibration failed and why
            log.exception("calibration failed")
            result.update(status="failed", reason=f"{type(error).__name__}: {error}"[:500])
    write_json(out_path, result)
    log.info("%s: %s %s", out_path, result["status"], result["reason"] or "")
    return result


def main(argv=None) -> None:
    """The command line: measure this device's matmul and copy peaks into peaks.json (see --help);
    settings not given come from the effective config."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_arguments(parser)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    experiment = experiment_from_args(parser, args)
    setup_logging()
    calibrate(experiment["device"], args.out)


def run_job(smk) -> None:
    """The job of rules/calibration.smk, called by `step_io.run_step`."""
    calibrate(smk.params.device, smk.output.peaks)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
