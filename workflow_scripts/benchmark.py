"""Step 5: one benchmark cell = one engine x precision x batch size x sequence length x padding.

Loads the engine, times its first call (compilation) apart, checks its logits against the fp32 eager
reference on the measured batches, then times warm-up and repeats. Writes one JSON result whatever happens:
status ok / mismatch / skipped / oom / failed, with the reason.
"""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import gc
import logging
import resource
import time

import torch

from workflow_scripts import environment, host_state, stats
from workflow_scripts.cell_step import recorded_result
from workflow_scripts.correctness import compare
from workflow_scripts.engines import create
from workflow_scripts.measure import pinned_to_one_core, time_first_call, time_windows, warm_up
from workflow_scripts.progress import Progress, cell_label, while_slow
from workflow_scripts.step_io import (add_cell_arguments, add_tolerance_arguments, cell_from_args, cell_from_job,
                                     engine_settings, experiment_from_args, job_engine_settings, run_step,
                                     setup_logging, tolerance_from_args)
from workflow_scripts.tokens import batch_rows, load_tokens, make_batch

log = logging.getLogger("benchmark")


def run_cell(cell: dict, model_dir: str, tokens_path: str, reference_path: str, artifacts: dict,
             engine_settings: dict, measurement: dict, tolerance: dict, out_path: str) -> dict:
    """Measure one cell (engine, precision, batch_size, seq_len, padding, device) and write its result (kind
    latency) to out_path; returns it. measurement: config's measurement section; tolerance: max_abs_diff and
    min_agreement against the fp32 eager logits in reference_path. Any failure becomes the result's status."""
    # where the job's life went before this line: interpreter start, imports, placement
    started = environment.process_started_unix()
    process_s = time.time() - started if started else None
    cell = {**cell, "device": environment.resolve_device(cell["device"])}
    config_slice = {"cell": cell, "engine_settings": engine_settings, "measurement": measurement,
                    "tolerance": tolerance}
    with recorded_result("latency", cell, model_dir, out_path, config_slice, log, measurement=measurement,
                         startup=None, latency=None, throughput_samples_per_s=None, memory=None, correctness=None,
                         engine=None, tokens_per_batch=None, server=None, phases_s={"process": process_s},
                         host=None) as result:
        result.update(measure_cell(cell, model_dir, tokens_path, reference_path, artifacts, engine_settings,
                                   measurement, tolerance, out_path, result["phases_s"]))
    return result


def measure_cell(cell, model_dir, tokens_path, reference_path, artifacts, engine_settings, measurement, tolerance,
                 out_path, phases):
    """The cell's numbers; `phases` receives the seconds each step of the job took (see measure_engine)."""
    start = time.perf_counter()
    if cell["device"] == "cuda":
        torch.cuda.synchronize()  # creates the CUDA context, timed on its own
    phases["cuda_context"] = time.perf_counter() - start
    start = time.perf_counter()
    tokens = load_tokens(tokens_path)
    reference = torch.load(reference_path, weights_only=True)
    rows = batch_rows(tokens["input_ids"].shape[0], cell["batch_size"], measurement["max_distinct_batches"])
    engine = create(cell["engine"], model_dir=model_dir, device=cell["device"], precision=cell["precision"],
                    settings=engine_settings, artifacts=artifacts, result_path=out_path)
    phases["inputs"] = time.perf_counter() - start
    try:
        return measure_engine(engine, cell, tokens, reference, rows, measurement, tolerance, phases)
    finally:
        engine.close()


def measure_engine(engine, cell, tokens, reference, rows, measurement, tolerance, phases=None):
    """Load, first call, correctness, timed calls. `phases` (if given) gets seconds per step: batches (inputs
    onto the device), load, first_call (compilation), correctness, timed (the timed calls and their statistics)."""
    phases = {} if phases is None else phases
    device, batch_size = cell["device"], cell["batch_size"]
    start = time.perf_counter()
    batches = [make_batch(tokens, r, cell["padding"], engine.input_device or device) for r in rows]
    phases["batches"] = time.perf_counter() - start
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    engine.load()
    load_s = phases["load"] = time.perf_counter() - start

    def run_batch(batch):
        return engine.run(batch["input_ids"], batch["attention_mask"])

    with while_slow(f"bench {cell_label(cell)}", "first call (compiling, capturing graphs)"):
        first_call_s = phases["first_call"] = time_first_call(run_batch, batches[0], device)
    start = time.perf_counter()
    logits = torch.cat([run_batch(b).float().cpu() for b in batches])
    correctness = compare(logits, reference[torch.cat([b["rows"] for b in batches])], tolerance)
    phases["correctness"] = time.perf_counter() - start
    progress = Progress(f"bench {cell_label(cell)}", measurement["repeats"] * measurement["windows"], "window")
    progress.start(f"loaded in {load_s:.1f} s, first call {first_call_s:.1f} s, outputs "
                   f"{'match' if correctness['within_tolerance'] else 'DIFFER from'} fp32 eager; timing")
    start = time.perf_counter()
    by_client = engine.timed_by_client(batches, measurement)  # a served engine's own load client, or None
    if by_client is None:
        latency, server, host = time_calls(engine, run_batch, batches, device, batch_size, measurement, progress)
        split = None
    else:  # perf_analyzer's own windows; the host is not sampled between them
        latency, server, split = by_client["latency"], by_client["server"], by_client["latency_split_ms"]
        host = None
    phases["timed"] = time.perf_counter() - start
    progress.finish(timed_summary(latency))
    # dynamic padding shrinks batches: report how many tokens an average measured batch carries
    tokens_per_batch = sum(b["input_ids"].numel() for b in batches) / len(batches)
    described = engine.describe()
    del batches
    gc.collect()  # a cell may run right after another in the same process (tests, command line)
    return {
        "status": "ok" if correctness["within_tolerance"] else "mismatch",
        "reason": None if correctness["within_tolerance"] else
        f"logits differ from fp32 eager: max |diff| {correctness['max_abs_diff']:.3g}, "
        f"agreement {correctness['agreement']:.1%} (tolerance {tolerance})",
        "startup": {"load_s": load_s, "first_call_s": first_call_s},
        "latency": latency,
        "throughput_samples_per_s": latency["wall_ms"]["throughput_samples_per_s"],
        "memory": {"peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
                   "peak_host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024},
        "correctness": correctness,
        "tokens_per_batch": tokens_per_batch,
        "engine": described,
        "server": server,
        "load_client": engine.load_client,
        "latency_split_ms": split,
        "host": host,
    }


def time_calls(engine, run_batch, batches, device, batch_size, measurement, progress: Progress | None = None
               ) -> tuple[dict, dict | None, dict]:
    """The shared timing loop, every call timed here: (the result's latency, the engine's server window, the
    host's state over the timed windows). `progress` (if given) counts the timed windows."""
    window_p50: list[float] = []

    def after_window(window: dict) -> None:
        host.sample()
        if progress:
            window_p50.append(stats.median(window["wall_ms"]))
            progress.step(lambda: f"p50 so far {stats.median(window_p50):.3f} ms")

    with pinned_to_one_core(measurement.get("pin_cpu", False), device) as pinned_core:
        warmup = warm_up(run_batch, batches, device, measurement)
        engine.begin_window()  # after the warm-up: a server counts the timed requests only
        with host_state.monitor(device) as host:
            timed = time_windows(run_batch, batches, device, measurement, after_window)
            host_summary = host.summary()
    server = engine.end_window()
    latency = stats.latency_summary(timed, batch_size, measurement["bootstrap_resamples"],
                                    measurement["regime_min_gap"])
    latency.update(warmup=warmup, pinned_core=pinned_core)
    return latency, server, host_summary


def timed_summary(latency: dict) -> str:
    """`p50 1.234 ms [1.200-1.270]` of a cell's latency, with its warm-up when it did not settle."""
    wall = latency["wall_ms"]
    low, high = wall.get("p50_ci95") or (None, None)
    interval = f" [{low:.3f}-{high:.3f}]" if low is not None and high is not None else ""
    warmup = latency.get("warmup") or {}
    unsteady = f", warm-up not steady after {warmup['seconds']:.1f} s" if warmup and not warmup["steady"] else ""
    return f"p50 {wall['p50']:.3f} ms{interval}{unsteady}"


def main(argv=None) -> None:
    """The command line: one cell with the settings its rule would give it (step_io.experiment_from_args)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cell_arguments(parser)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--measurement", metavar="KEY=VALUE", nargs="+", default=[],
                        help="over keys of the measurement section, e.g. windows=20 pin_cpu=true")
    add_tolerance_arguments(parser)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    experiment = experiment_from_args(parser, args, {"measurement": args.measurement})
    setup_logging()
    cell, artifacts = cell_from_args(parser, args, experiment)
    run_cell(cell, args.model_dir, args.tokens, args.reference, artifacts, engine_settings(args.engine, experiment),
             experiment["measurement"], tolerance_from_args(args, experiment), args.out)


def run_job(smk) -> None:
    """The job of rules/benchmark.smk, called by `step_io.run_step`."""
    torch.set_num_threads(smk.threads)
    cell, artifacts = cell_from_job(smk)
    run_cell(cell, smk.input.model_dir, smk.input.tokens, smk.input.reference, artifacts, job_engine_settings(smk),
             smk.params.measurement, smk.params.tolerance, smk.output.result)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
