"""Glue shared by every step: running as a Snakemake script or as a command-line program."""

import logging
import sys
from typing import Callable

from workflow_scripts.engines import spec
from workflow_scripts.job_log import capture_errors, console, tee_stderr
from workflow_scripts.placement import place_snakemake_job
from workflow_scripts.progress import log as progress_log


def run_step(script_globals: dict, job: Callable[[object], int | None],
             command_line: Callable[[], int | None]) -> None:
    """The entry of every step script (its `if __name__ == "__main__":` block).

    Called by Snakemake (`snakemake` among `script_globals`): copies stderr into the job's log (a no-op when
    the script's first line already did), sets up logging to that log, places the job on its GPU slot and
    cores (`placement.place_snakemake_job`, once, before `job` can initialise CUDA), then runs `job(snakemake)`.
    From the command line: runs `command_line()` (argparse, then the step). Exits with the code either returns
    when it is non-zero (None counts as 0); an exception propagates, so its traceback lands in the job's log.
    """
    smk = script_globals.get("snakemake")
    if smk is None:
        code = command_line()
    else:
        capture_errors(script_globals)
        setup_logging(snakemake_log(smk))
        place_snakemake_job(smk)
        code = job(smk)
    if code:
        sys.exit(code)


def setup_logging(log_path: str | None = None) -> None:
    """Log to the rule's log file (Snakemake) or to stderr (command line). With a log file, whatever the
    step writes to stderr from here on (an uncaught exception's traceback, a SystemExit message, library
    warnings) goes to the log as well as to the console, so that a failed job's log holds its own error, and
    the `progress` logger's lines (workflow_scripts/progress.py) are shown on the console too."""
    if log_path:
        log_file = tee_stderr(log_path)  # the file job_log.capture_errors opened, if it ran
        handler = logging.StreamHandler(log_file)
        shown = logging.StreamHandler(console())
        shown.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
        progress_log.handlers = [shown]  # and on to the root's handler: the log
    else:
        handler = logging.StreamHandler(sys.stderr)
        progress_log.handlers = []
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[handler], force=True)


def snakemake_log(smk) -> str | None:
    """A Snakemake job's first log file, or None when its rule declares no `log:`."""
    return smk.log[0] if len(smk.log) else None


def add_cell_arguments(parser, batch_size: int = 1) -> None:
    """The options that name one cell and the files its engine loads (command-line use of a step)."""
    parser.add_argument("--engine", required=True)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--padding", default="max_length")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--torchscript", help="exported module, for the torchscript engine")


def cell_from_args(args) -> tuple[dict, dict]:
    """(cell, artifacts) from the options of add_cell_arguments."""
    cell = {"engine": args.engine, "precision": args.precision, "batch_size": args.batch_size,
            "seq_len": args.seq_len, "padding": args.padding, "device": args.device}
    return cell, ({"torchscript": args.torchscript} if args.torchscript else {})


def job_engine_settings(smk) -> dict:
    """The engine settings of a Snakemake job: its params (what can change a result) and, for a served
    engine, the server's timeouts, which reach the job as resources (rules/common.smk, SERVER_RESOURCES)."""
    settings = dict(smk.params.engine_settings)
    if spec(smk.wildcards.engine).served:
        settings.update(startup_timeout_s=smk.resources.server_startup_timeout_s,
                        stop_grace_s=smk.resources.server_stop_grace_s)
    return settings


def cell_from_job(smk, batch_size: int | None = None) -> tuple[dict, dict]:
    """(cell, artifacts) of a Snakemake job: the wildcards, the device param, the engine's artifact inputs."""
    w = smk.wildcards
    cell = {"engine": w.engine, "precision": w.precision,
            "batch_size": batch_size if batch_size is not None else int(w.batch_size),
            "seq_len": int(w.seq_len), "padding": w.padding, "device": smk.params.device}
    return cell, {kind: smk.input[kind] for kind in spec(w.engine).artifacts}
