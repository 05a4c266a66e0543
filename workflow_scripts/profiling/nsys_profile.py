"""Step: profile one cell with Nsight Systems (CUDA + NVTX tracing, kernels inside CUDA graphs traced one
by one), keep the .nsys-rep, export `nsys stats` CSV reports and reduce them to the profile summary.

Skipped, not failed, when nsys is not installed or the cell does not run on a CUDA GPU. Every other
profiling failure (nsys exits non-zero, a report name this nsys does not know under any of its names,
`profiling.nsys.timeout_s` exceeded, a summary that cannot be read) ends as a `failed` profile result with
the reason: the aggregate step needs every profile's summary, and a missing one would stop the report.
"""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import logging
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from workflow_scripts.deployment import nsys_missing
from workflow_scripts import engines
from workflow_scripts.cell_step import recorded_result
from workflow_scripts.profiling import kernels, nsys_stats
from workflow_scripts.profiling.cell import MEASURED_RANGE
from workflow_scripts.progress import cell_label, job_ended, job_started
from workflow_scripts.results import read_json, write_json
from workflow_scripts.experiment import profiling_settings
from workflow_scripts.step_io import (add_cell_arguments, add_profiling_arguments, cell_from_args, cell_from_job,
                                     engine_settings, experiment_from_args, job_engine_settings, profiling_values,
                                     run_step, setup_logging)
from workflow_scripts.wording import count

log = logging.getLogger("nsys_profile")
TRACE_FLAGS = ["--trace=cuda,nvtx", "--cuda-graph-trace=node"]
# CPU sampling off: CUDA and NVTX tell the story; `nsys launch` refuses these, its `start` takes them
QUIET_FLAGS = ["--sample=none", "--cpuctxsw=none"]


def unavailable_reason(device: str, executable: str) -> str | None:
    """Why Nsight Systems cannot profile here (a CPU cell, no nsys executable), or None."""
    if device != "cuda":
        return "Nsight Systems traces CUDA: this cell runs on CPU"
    return nsys_missing(executable)


def nsys_version(executable: str) -> str:
    """The nsys version string ("unknown" when it prints none)."""
    proc = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=60)
    return proc.stdout.strip().removeprefix("NVIDIA Nsight Systems version").strip() or "unknown"


def profile_cell(cell: dict, model_dir: str, tokens_path: str, artifacts: dict, engine_settings: dict,
                 settings: dict, executable: str, out_path: str, report_dir: str, threads: int = 1) -> dict:
    """Profile one cell under Nsight Systems (`executable`) in a child process and write its result (kind
    profile: per-iteration kernel and launch counts, GPU busy ms) to out_path, the report in report_dir;
    returns it. Skipped with the reason on CPU or without nsys; any failure becomes the result's status."""
    # the device is checked with NVML: this step does not import torch, so a skip costs no time
    from workflow_scripts.experiment import planned_device

    cell = {**cell, "device": planned_device(cell["device"])}
    Path(report_dir).mkdir(parents=True, exist_ok=True)
    name = f"profile nsys {cell_label(cell)}"
    started = None  # a skipped profile prints its one line: the skip with the reason
    with recorded_result("profile", cell, model_dir, out_path, {"cell": cell, "profiling": settings}, log,
                         profiler="nsys", profile=None) as result:
        reason = unavailable_reason(cell["device"], executable)
        if reason:
            result["status"], result["reason"] = "skipped", reason
        else:
            started = job_started(name, f"{count(settings['iterations'], 'iteration')} under Nsight Systems")
            outcome, result["profile"] = run_nsys(cell, model_dir, tokens_path, artifacts, engine_settings, settings,
                                                  shutil.which(executable), out_path, Path(report_dir), threads)
            result["status"], result["reason"] = outcome["status"], outcome["reason"]
    job_ended(name, result, started)
    return result


def run_nsys(cell, model_dir, tokens_path, artifacts, engine_settings, settings, nsys: str, out_path: str,
             report_dir: Path, threads: int) -> tuple[dict, dict | None]:
    """Run the cell under nsys (a named session around a served engine's server), export the stats reports;
    (outcome of the profiled process, summary or None)."""
    report = report_dir / "profile"
    spec = {"cell": cell, "model_dir": str(model_dir), "tokens": str(tokens_path), "artifacts": artifacts,
            "engine_settings": engine_settings, "settings": settings, "result_path": str(out_path),
            "outcome_path": str(report_dir / "target_outcome.json"), "threads": threads}
    target = [sys.executable, "-m", "workflow_scripts.profiling.nsys_target", str(report_dir / "target_spec.json")]
    env = {**os.environ, "NSYS_NVTX_PROFILER_REGISTER_ONLY": "0"}  # capture ranges named by plain strings
    if engines.spec(cell["engine"]).served:
        # the server, not this client, does the GPU work: run it under a named nsys session
        session = f"inferbench-{uuid.uuid4().hex[:12]}"
        spec["session"] = {
            "launch": [nsys, "launch", f"--session-new={session}", *TRACE_FLAGS],
            "start": [nsys, "start", f"--session={session}", *QUIET_FLAGS, f"--output={report}",
                      "--force-overwrite=true"],
            "stop": [nsys, "stop", f"--session={session}"],
        }
        command = target
    else:
        command = [nsys, "profile", *TRACE_FLAGS, *QUIET_FLAGS, "--capture-range=nvtx", f"--nvtx-capture={MEASURED_RANGE}",
                   "--capture-range-end=stop", "--force-overwrite=true", f"--output={report}", *target]
    write_json(report_dir / "target_spec.json", spec)
    run_logged(command, env, report_dir / "nsys.log", settings["timeout_s"])
    if not Path(spec["outcome_path"]).exists():
        return {"status": "failed", "reason": f"the profiled process wrote no outcome: see {report_dir / 'nsys.log'}"}, None
    outcome = read_json(spec["outcome_path"])
    if outcome["status"] != "ok":
        return outcome, None
    rep = report.with_suffix(".nsys-rep")
    if not rep.exists():
        return {"status": "failed", "reason": f"nsys wrote no {rep.name}: see {report_dir / 'nsys.log'}"}, None
    prefix = report_dir / "stats"
    for report_name, names in nsys_stats.REPORTS.items():
        export_report(nsys, rep, prefix, report_name, names, env, report_dir / "nsys_stats.log", settings["timeout_s"])
    return outcome, summarize(prefix, outcome, nsys_version(nsys), report_dir, rep)


def export_report(nsys: str, rep: Path, prefix: Path, report_name: str, names: tuple[str, ...], env: dict,
                  log_path: Path, timeout_s: float) -> None:
    """Export one `nsys stats` report to `<prefix>_<report_name>.csv`, trying its names newest first (nsys
    renamed its reports, e.g. `gpukernsum` -> `cuda_gpu_kern_sum` in 2023.2). One call per report, so that
    an unknown name costs only that report's attempt. Raises ProfilerFailed naming every name tried."""
    errors = []
    for name in names:
        try:
            run_logged([nsys, "stats", f"--report={name}", "--format=csv", f"--output={prefix}",
                        "--force-export=true", str(rep)], env, log_path, timeout_s)
        except ProfilerFailed as error:
            errors.append(f"{name}: {error}")
            continue
        written = nsys_stats.report_path(prefix, name)
        if name != report_name and written.exists():
            written.replace(nsys_stats.report_path(prefix, report_name))
        return
    raise ProfilerFailed(f"nsys stats could not export the {report_name} report under any of its names "
                         f"({', '.join(names)}):\n" + "\n".join(errors))


def summarize(prefix, outcome: dict, version: str, report_dir: Path, rep: Path) -> dict:
    """The profile summary from the exported `nsys stats` CSVs: kernels, launches, GPU busy time per iteration, top
    kernels; also writes kernels.csv with categories."""
    kernel_table = nsys_stats.kernels(prefix)
    copies = nsys_stats.memory_copies(prefix)
    iterations, wall_ms = outcome["iterations"], outcome["wall_ms_per_iter"]
    traced = nsys_stats.iteration_range(prefix)
    if traced:  # in-process engines: the NVTX ranges give the iterations nsys actually captured
        iterations, wall_ms = traced
    kernel_table.assign(category=kernel_table.name.map(kernels.category)).to_csv(report_dir / "kernels.csv",
                                                                                  index=False)
    summary = kernels.summarize(kernel_table.to_dict("records"), nsys_stats.api_calls(prefix).to_dict("records"),
                                iterations, wall_ms, memcpy_ms=float(copies.total_ms.sum()))
    summary.update({"tool_version": version, "client_wall_ms_per_iter":
                    outcome["wall_ms_per_iter"],
                    "files": {"nsys_rep": str(rep), "kernels.csv": str(report_dir / "kernels.csv"),
                              **{name: str(nsys_stats.report_path(prefix, name)) for name in nsys_stats.REPORTS}}})
    return summary


class ProfilerFailed(RuntimeError):
    """An nsys command exited non-zero or ran past `profiling.nsys.timeout_s`; the message holds its log's end."""


def run_logged(command: list[str], env: dict, log_path: Path, timeout_s: float) -> None:
    """Run one nsys command with its output appended to `log_path`. On a timeout the command's whole process
    group (nsys, the profiled process, a server it started) is killed. Raises ProfilerFailed."""
    log.info("$ %s", " ".join(command))
    with open(log_path, "a") as handle:
        handle.write(f"$ {' '.join(command)}\n")
        handle.flush()
        proc = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ProfilerFailed(f"{Path(command[0]).name} {command[1]} ran longer than profiling.nsys.timeout_s "
                                 f"({timeout_s:g} s) and was killed; end of {log_path}:\n{log_tail(log_path)}")
    if returncode != 0:
        raise ProfilerFailed(f"{Path(command[0]).name} {command[1]} exited with {returncode}; end of {log_path}:\n"
                             f"{log_tail(log_path)}")


def log_tail(log_path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file."""
    return "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-lines:])


def main(argv=None) -> None:
    """The command line: one cell under Nsight Systems with its rule's settings (nsys from profiling.nsys)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cell_arguments(parser)
    parser.add_argument("--nsys", help="the nsys executable, over profiling.nsys.executable")
    add_profiling_arguments(parser)
    parser.add_argument("--out", required=True, help="summary JSON")
    parser.add_argument("--report-dir", required=True, help="folder for the .nsys-rep and the CSV reports")
    args = parser.parse_args(argv)
    experiment = experiment_from_args(parser, args, profiling_values(args))
    setup_logging()
    cell, artifacts = cell_from_args(parser, args, experiment)
    nsys = experiment["profiling"]["nsys"]
    profile_cell(cell, args.model_dir, args.tokens, artifacts, engine_settings(args.engine, experiment),
                 {**profiling_settings(experiment, args.padding), "timeout_s": nsys["timeout_s"]},
                 args.nsys or nsys["executable"], args.out, args.report_dir)


def run_job(smk) -> None:
    """The job of rule nsys_profile in rules/profiling.smk, called by `step_io.run_step`."""
    cell, artifacts = cell_from_job(smk)
    profile_cell(cell, smk.input.model_dir, smk.input.tokens, artifacts,
                 job_engine_settings(smk), {**smk.params.settings, "timeout_s": smk.resources.nsys_timeout_s},
                 smk.resources.nsys_executable, smk.output.summary,
                 smk.output.reports, smk.threads)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
