"""Glue shared by every step: running as a Snakemake script or as a command-line program."""

import logging
import os
import sys
from typing import Callable

from workflow_scripts import engines
from workflow_scripts.engines import ARTIFACTS, spec
from workflow_scripts.experiment import ConfigError, step_config, tolerance
from workflow_scripts.job_log import capture_errors, console, tee_stderr
from workflow_scripts.placement import place_snakemake_job
from workflow_scripts.progress import log as progress_log


def run_step(script_globals: dict, job: Callable[[object], int | None],
             command_line: Callable[[], int | None]) -> None:
    """The entry of every step script (its `if __name__ == "__main__":` block).

    Called by Snakemake (`snakemake` among `script_globals`): copies stderr into the job's log (a no-op when
    the script's first line already did), sets up logging to that log, places the job on its GPU slot and
    cores (`placement.place_snakemake_job`, once, before `job` can initialise CUDA), then runs `job(snakemake)`.
    A job that returns 0 or None ends at once (finish_job). From the command line: runs `command_line()`
    (argparse, then the step). Exits with the code either returns when it is non-zero (None counts as 0); an
    exception propagates, so its traceback lands in the job's log.
    """
    smk = script_globals.get("snakemake")
    if smk is None:
        code = command_line()
    else:
        capture_errors(script_globals)
        setup_logging(snakemake_log(smk))
        place_snakemake_job(smk)
        code = job(smk)
        if not code:
            finish_job()
    if code:
        sys.exit(code)


def finish_job() -> None:
    """End a Snakemake job that has written its outputs, without the interpreter's teardown: closing torch's
    CUDA context and Inductor's compile workers and running the libraries' exit handlers took ~2 s per job
    (median 2.9 s "after" the result per cell on two H200s, benchmarks/harness_speed.py; a CPU process after
    one torch.compile: ~2 s against 0.08 s). Logs and standard streams are flushed first; a job's child
    processes (servers, load clients) have already been stopped by the step itself."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


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


def add_config_arguments(parser, device: bool = True) -> None:
    """The options that choose the experiment a step's command line runs with, as Snakemake's do: config
    files over config.yaml, `--config KEY=VALUE` entries, and (device=True) `--device` over config's."""
    parser.add_argument("--configfile", nargs="+", action="extend", default=[], metavar="FILE",
                        help="config files over config.yaml, later ones winning (as snakemake --configfile)")
    parser.add_argument("--config", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config values over the files (as snakemake --config), e.g. "
                             "\"measurement={windows: 20}\"")
    if device:
        parser.add_argument("--device", choices=["auto", "cuda", "cpu"],
                            help="over config's device (auto: cuda where NVML sees a GPU, else cpu, which "
                                 "applies cpu_overrides as a run does)")


def experiment_from_args(parser, args, section_values: dict[str, list[str]] | None = None) -> dict:
    """The effective experiment of add_config_arguments' options (experiment.step_config); a config the
    schema or the checks refuse ends the program through `parser.error`, naming each problem."""
    try:
        return step_config(args.configfile, args.config, section_values, getattr(args, "device", None))
    except ConfigError as error:
        parser.error(f"invalid config:\n  {error}")


def add_cell_arguments(parser) -> None:
    """The options that name one cell and the files its engine loads (command-line use of a step), and
    add_config_arguments' options."""
    parser.add_argument("--engine", required=True, choices=list(engines.ENGINES))
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--padding", default="max_length", choices=["max_length", "dynamic"])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--tokens", required=True)
    add_artifact_arguments(parser)
    add_config_arguments(parser)


def add_artifact_arguments(parser, prefix: str = "") -> None:
    """One option per kind of exported model an engine loads (engines.ARTIFACTS: `--torchscript`, `--repository`),
    named `--<prefix><option>` (the pair's baseline: prefix "baseline-")."""
    made_by: dict[str, set[str]] = {}
    for artifact in ARTIFACTS.values():
        made_by.setdefault(artifact.option, set()).add(f"the {artifact.output} rule {artifact.rule} writes")
    for option, files in made_by.items():
        users = [name for name, entry in engines.ENGINES.items()
                 if any(ARTIFACTS[kind].option == option for kind in entry.artifacts)]
        parser.add_argument(f"--{prefix}{option}", metavar="PATH",
                            help=f"{' or '.join(sorted(files))}, for {', '.join(users)}"
                                 + (" as the baseline" if prefix else ""))


def artifacts_from_args(parser, args, engine: str, prefix: str = "") -> dict[str, str]:
    """The files engine `engine` loads, {kind: path}, from add_artifact_arguments' options; a missing one ends
    the program through `parser.error`, naming the option and the rule that writes the file."""
    artifacts = {}
    for kind in spec(engine).artifacts:
        artifact = ARTIFACTS[kind]
        value = getattr(args, f"{prefix}{artifact.option}".replace("-", "_"))
        if not value:
            parser.error(f"engine {engine} loads the {artifact.output} rule {artifact.rule} writes: name it with "
                         f"--{prefix}{artifact.option} PATH")
        artifacts[kind] = value
    return artifacts


def cell_from_args(parser, args, experiment: dict) -> tuple[dict, dict]:
    """(cell, artifacts) from the options of add_cell_arguments, on the experiment's resolved device; an
    artifact the engine needs and the command line does not name ends the program (artifacts_from_args)."""
    cell = {"engine": args.engine, "precision": args.precision, "batch_size": args.batch_size,
            "seq_len": args.seq_len, "padding": args.padding, "device": experiment["device"]}
    return cell, artifacts_from_args(parser, args, args.engine)


def add_profiling_arguments(parser) -> None:
    """--iterations and --warmup-iters of a profile, over the profiling section's."""
    parser.add_argument("--iterations", type=int, help="over profiling.iterations")
    parser.add_argument("--warmup-iters", type=int, help="over profiling.warmup_iters")


def profiling_values(args) -> dict[str, list[str]]:
    """add_profiling_arguments' options that were given, as experiment_from_args' section values."""
    given = {"iterations": args.iterations, "warmup_iters": args.warmup_iters}
    return {"profiling": [f"{key}={value}" for key, value in given.items() if value is not None]}


def add_tolerance_arguments(parser) -> None:
    """--max-abs-diff and --min-agreement, over the tolerance the config gives the cell's precision."""
    parser.add_argument("--max-abs-diff", type=float,
                        help="over correctness.tolerance.<precision>.max_abs_diff (largest |logit - reference|)")
    parser.add_argument("--min-agreement", type=float,
                        help="over correctness.tolerance.<precision>.min_agreement (share of equal predictions)")


def tolerance_from_args(args, experiment: dict) -> dict:
    """The tolerance of args.precision (the rules' `tolerance` param), with add_tolerance_arguments' options
    over it where given: {max_abs_diff, min_agreement}."""
    given = {"max_abs_diff": args.max_abs_diff, "min_agreement": args.min_agreement}
    return {**tolerance(experiment, args.precision), **{k: v for k, v in given.items() if v is not None}}


def engine_settings(engine: str, experiment: dict) -> dict:
    """The settings a job of `engine` gets from this experiment: its params and, for a served engine, the
    server's timeouts, which a job gets as resources (job_engine_settings)."""
    settings = engines.settings_from_config(engine, experiment)
    if spec(engine).served:
        settings.update(engines.settings_from_config(engine, experiment, resources=True))
    return settings


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
