"""Step: profile one cell with the PyTorch profiler (CPU + CUDA activities) over a few iterations after
warm-up, each iteration in a `record_function` range. Writes an op table, a kernel table, a compressed
Chrome trace, and a summary result (kind: profile) in the one result schema.
"""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import gzip
import logging
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from workflow_scripts import environment
from workflow_scripts.cell_step import recorded_result
from workflow_scripts.engines import spec
from workflow_scripts.profiling import kernels
from workflow_scripts.profiling.cell import loaded_engine, profiled_iterations, warm_up
from workflow_scripts.progress import cell_label, job_ended, job_started
from workflow_scripts.results import atomic_write_bytes, write_csv
from workflow_scripts.experiment import profiling_settings
from workflow_scripts.step_io import (add_cell_arguments, add_profiling_arguments, cell_from_args, cell_from_job,
                                     engine_settings, experiment_from_args, job_engine_settings, profiling_values,
                                     run_step, setup_logging)
from workflow_scripts.wording import count

log = logging.getLogger("torch_profile")
ITERATION_LABEL = "inferbench_iteration"
TOP_OPS = 15


def profile_cell(cell: dict, model_dir: str, tokens_path: str, artifacts: dict, engine_settings: dict,
                 settings: dict, out_path: str, tables_dir: str) -> dict:
    """Profile one in-process cell with the PyTorch profiler (settings: iterations, warmup_iters,
    max_distinct_batches) and write its result (kind profile) to out_path, the tables into tables_dir; returns
    it. A served engine's cell is skipped (its model runs in the server); any failure becomes the status."""
    cell = {**cell, "device": environment.resolve_device(cell["device"])}
    Path(tables_dir).mkdir(parents=True, exist_ok=True)
    name = f"profile torch {cell_label(cell)}"
    started = None  # a skipped profile prints its one line: the skip with the reason
    with recorded_result("profile", cell, model_dir, out_path, {"cell": cell, "profiling": settings}, log,
                         profiler="torch", profile=None) as result:
        if spec(cell["engine"]).served:
            result["status"], result["reason"] = "skipped", (
                "the model runs inside the server process, out of this profiler's reach: see its "
                "Nsight Systems profile")
        else:
            started = job_started(name, f"{count(settings['iterations'], 'iteration')} under the PyTorch profiler")
            result["profile"] = run_profiler(cell, model_dir, tokens_path, artifacts, engine_settings, settings,
                                             out_path, Path(tables_dir))
    job_ended(name, result, started)
    return result


def run_profiler(cell, model_dir, tokens_path, artifacts, engine_settings, settings, out_path, tables_dir: Path):
    """Warm up, profile settings["iterations"] iterations, write ops.csv, kernels.csv and trace.json.gz; the
    summary (per iteration: ms, kernels, launches, top ops)."""
    device = cell["device"]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with loaded_engine(cell, model_dir, tokens_path, artifacts, engine_settings, out_path,
                       settings.get("max_distinct_batches")) as (engine, batches):
        warm_up(engine, batches, device, settings["warmup_iters"])
        with profile(activities=activities) as prof:
            wall_ms = profiled_iterations(engine, batches, device, settings["iterations"],
                                          label=lambda: record_function(ITERATION_LABEL))
    ops = op_table(prof)
    kernel_table = gpu_kernel_table(prof)
    write_csv(tables_dir / "ops.csv", ops)
    write_csv(tables_dir / "kernels.csv", kernel_table)
    write_trace(prof, tables_dir / "trace.json.gz")
    api_calls = [{"name": r.name, "total_ms": r.cpu_total_ms, "calls": r.calls}
                 for r in ops.itertuples() if r.name.startswith(("cuda", "cu"))]
    summary = kernels.summarize(kernel_table.to_dict("records"), api_calls, settings["iterations"], wall_ms)
    per_iter = 1.0 / settings["iterations"]
    cpu_ops = ops[~ops.name.str.startswith(("cuda", "cu")) & (ops.name != ITERATION_LABEL)]
    summary.update({
        "tool_version": torch.__version__,
        "cpu_ops_per_iter": float(cpu_ops.calls.sum()) * per_iter,
        "top_ops": [{"name": r.name, "calls_per_iter": r.calls * per_iter, "self_cpu_ms_per_iter":
                     r.self_cpu_ms * per_iter, "self_device_ms_per_iter": r.self_device_ms * per_iter}
                    for r in cpu_ops.nlargest(TOP_OPS, "self_cpu_ms").itertuples()],
        "files": {name: str(tables_dir / name) for name in ("ops.csv", "kernels.csv", "trace.json.gz")},
    })
    return summary


def op_table(prof) -> pd.DataFrame:
    """Per CPU operator: calls, self CPU ms, total CPU ms, self device ms over the profiled iterations."""
    rows = [{"name": e.key, "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1000.0,
             "cpu_total_ms": e.cpu_time_total / 1000.0,
             "self_device_ms": getattr(e, "self_device_time_total", 0.0) / 1000.0}
            for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CPU]
    return pd.DataFrame(rows, columns=["name", "calls", "self_cpu_ms", "cpu_total_ms", "self_device_ms"])


def gpu_kernel_table(prof) -> pd.DataFrame:
    """Every GPU activity (kernels, copies, sets) by name: total time and calls over the profiled iterations."""
    # our record_function range also shows up on the GPU timeline (a user annotation): not a kernel
    rows = [{"name": e.name, "ms": e.time_range.elapsed_us() / 1000.0} for e in prof.events()
            if e.device_type == torch.autograd.DeviceType.CUDA and e.name != ITERATION_LABEL
            and not getattr(e, "is_user_annotation", False)]
    frame = pd.DataFrame(rows, columns=["name", "ms"])
    table = frame.groupby("name").ms.agg(total_ms="sum", calls="count").reset_index()
    return table.sort_values("total_ms", ascending=False).reset_index(drop=True)


def write_trace(prof, path: Path) -> None:
    """The profiler's Chrome trace, gzip-compressed, written atomically."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(raw))
        with open(raw, "rb") as source, gzip.open(Path(tmp) / "trace.json.gz", "wb") as target:
            shutil.copyfileobj(source, target)
        atomic_write_bytes(path, (Path(tmp) / "trace.json.gz").read_bytes())


def main(argv=None) -> None:
    """The command line: PyTorch-profile one cell into a summary JSON and its tables (see --help);
    settings not given come from the effective config."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cell_arguments(parser)
    add_profiling_arguments(parser)
    parser.add_argument("--out", required=True, help="summary JSON")
    parser.add_argument("--tables-dir", required=True, help="folder for ops.csv, kernels.csv, trace.json.gz")
    args = parser.parse_args(argv)
    experiment = experiment_from_args(parser, args, profiling_values(args))
    setup_logging()
    cell, artifacts = cell_from_args(parser, args, experiment)
    profile_cell(cell, args.model_dir, args.tokens, artifacts, engine_settings(args.engine, experiment),
                 profiling_settings(experiment, args.padding), args.out, args.tables_dir)


def run_job(smk) -> None:
    """The job of rule torch_profile in rules/profiling.smk, called by `step_io.run_step`."""
    torch.set_num_threads(smk.threads)
    cell, artifacts = cell_from_job(smk)
    profile_cell(cell, smk.input.model_dir, smk.input.tokens, artifacts,
                 job_engine_settings(smk), smk.params.settings, smk.output.summary, smk.output.tables)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
