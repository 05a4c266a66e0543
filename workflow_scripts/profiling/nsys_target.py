"""The process Nsight Systems watches: load one cell's engine, warm it up, run the measured iterations.

In-process engines run under `nsys profile --capture-range=nvtx`: only the NVTX range around the measured
iterations is captured. Served engines start their server under `nsys launch` (a named session); this
process starts and stops that session's capture around the measured requests.
Writes a small JSON (status, wall time per iteration) for the calling step.
"""

import argparse
import json
import subprocess
import time

import torch

from workflow_scripts.outcome import classify
from workflow_scripts.profiling.cell import loaded_engine, profiled_iterations, warm_up
from workflow_scripts.results import read_json, write_json
from workflow_scripts.step_io import setup_logging

START_SETTLE_S = 2.0


def run(spec: dict) -> dict:
    """The profiled process's work: load the engine, warm up, run the profiled iterations (between the
    profiler's start and stop commands for a served engine). Returns {status, reason} and, when ok,
    wall_ms_per_iter and iterations; errors are classified, not raised."""
    cell, settings = spec["cell"], spec["settings"]
    engine_settings = dict(spec["engine_settings"])
    session = spec.get("session")
    if session:
        engine_settings["profiler"] = session["launch"]
    try:
        with loaded_engine(cell, spec["model_dir"], spec["tokens"], spec["artifacts"], engine_settings,
                           spec["result_path"], settings.get("max_distinct_batches")) as (engine, batches):
            warm_up(engine, batches, cell["device"], settings["warmup_iters"])
            if session:
                control(engine, session["start"])
                # `nsys start` returns before the server's trace is live: on an H200 the first of 10
                # requests sent at once went uncaptured (9 CUDA graph launches traced)
                time.sleep(START_SETTLE_S)
            wall_ms = profiled_iterations(engine, batches, cell["device"], settings["iterations"])
            if session:
                control(engine, session["stop"])
        return {"status": "ok", "reason": None, "wall_ms_per_iter": wall_ms, "iterations": settings["iterations"]}
    except Exception as error:
        status, reason = classify(error)
        return {"status": status, "reason": reason}


def control(engine, argv: list[str]) -> None:
    """Run a profiler control command where the server runs (inside its container, if any)."""
    command = engine.tool_command(argv)
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")


def main(argv=None) -> None:
    """The command line: run the spec JSON that nsys_profile wrote and write its outcome where it says."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spec", help="JSON written by workflow_scripts.profiling.nsys_profile")
    args = parser.parse_args(argv)
    setup_logging()
    spec = read_json(args.spec)
    torch.set_num_threads(spec.get("threads", 1))
    outcome = run(spec)
    write_json(spec["outcome_path"], outcome)
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
