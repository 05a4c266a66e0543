# Helpers shared by the rule files: the effective experiment, target lists, wildcard constraints.
import os
import sys

# The workflow_scripts package, for this process and for every job's scripts (also inside a container).
sys.path.insert(0, workflow.basedir)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))

import json

import yaml
from snakemake.logging import logger

from workflow_scripts import deployment, placement
from workflow_scripts import engines
from workflow_scripts.engines import ARTIFACTS, ENGINES
from workflow_scripts.experiment import (ConfigError, cells, checked_config, cpu_overrides, effective, fallback_notes,
                                        missing_compared_columns, paired_cells, pairing, piece_tables,
                                        profiled_cells, profiling_settings, report_settings, tolerance)

# Typed, checked against the schema (short messages naming each bad key), defaults filled, every mapping in key
# order (params compare by value: Snakemake records a param's repr). Step command lines resolve theirs the same
# way (experiment.step_config).
try:
    _checked = checked_config(config, f"{workflow.basedir}/schemas/config.schema.yaml")
except ConfigError as error:
    raise WorkflowError(f"Invalid config:\n  {error}")
config.clear()
config.update(_checked)
# The project's defaults: a key a user set to another value wins over cpu_overrides.
with open(f"{workflow.basedir}/config.yaml") as _handle:
    DEFAULT_CONFIG = yaml.safe_load(_handle)


def _executor_gives_gpus():
    """Whether the run asks its executor for a GPU per model job (`--set-resources <rule>:gpu=N`, as the Slurm
    profile does): those jobs then run where that GPU is, so `device: auto` means cuda even on a login node
    without one. Read from the resources, not from a profile's `config:` entry, which any `--config` on the
    command line replaces."""
    return any(getattr(resources.get("gpu"), "value", 0) for resources in
               (workflow.resource_settings.overwrite_resources or {}).values())


try:
    EXPERIMENT = effective(config, DEFAULT_CONFIG, scheduler_gives_gpus=_executor_gives_gpus())
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}")
if workflow.is_main_process and config["device"] == "auto" and _executor_gives_gpus():
    logger.info("Device cuda: the model jobs ask their executor for a GPU each (set-resources gpu)")
_cpu_applied, _kept = cpu_overrides(config, DEFAULT_CONFIG)
if EXPERIMENT["device"] == "cpu" and workflow.is_main_process:
    if _kept:
        logger.info(f"Device cpu: cpu_overrides leaves {', '.join(_kept)} as your config sets them")
if workflow.is_main_process:
    from workflow_scripts.hub import hub_reachable

    # named once on the console at the start, not only in the job logs and the report
    for _note in fallback_notes(EXPERIMENT, config["device"], hub_reachable(), _cpu_applied):
        logger.warning(_note)

DEVICE = EXPERIMENT["device"]
if workflow.is_main_process:
    # an engine whose runtime this machine lacks: said once, before any job; its cells run and are recorded
    # as skipped with the same reason (a cluster's jobs may run where the runtime is)
    for _engine in EXPERIMENT["sweep"]["engines"]:
        _missing = engines.missing_runtime(_engine, EXPERIMENT)
        if _missing:
            logger.warning(f"{_engine}: its cells will be skipped: {_missing}")


def _user_gpu_count():
    """`--resources gpu=N` from the command line or a profile, else None."""
    given = workflow.global_resources.get("gpu")
    return None if given is None or given.value is None else int(given.value)


SWEEP = EXPERIMENT["sweep"]
MEASUREMENT = EXPERIMENT["measurement"]
# Jobs that run the model (timing or not): on a local run with GPUs, each has a card of its own and a share of
# the cores near it (workflow_scripts/placement.py); `--resources gpu=N` overrides the count NVML finds. Without
# GPUs they take every core given to snakemake, so two never overlap. On a cluster the profile decides.
PLACEMENT = None
if workflow.is_main_process and workflow.local_exec:
    try:
        PLACEMENT = placement.plan(workflow.cores, _user_gpu_count(), DEVICE, placement.run_key(os.getcwd()))
    except placement.PlacementError as error:
        raise WorkflowError(f"GPU placement: {error}")
    except WorkflowError:  # a dry run without --cores: nothing runs, nothing to place
        pass
    if PLACEMENT:
        os.environ[placement.PLAN_VARIABLE] = json.dumps(PLACEMENT)  # local jobs inherit it
        if _user_gpu_count() is None:
            workflow.register_resource("gpu", len(PLACEMENT["slots"]))
if workflow.is_main_process and not PLACEMENT:
    os.environ.pop(placement.PLAN_VARIABLE, None)  # never a stale plan in cluster or CPU jobs
if PLACEMENT:
    MODEL_JOB_THREADS, MODEL_JOB_GPUS = PLACEMENT["threads_per_slot"], 1
else:
    try:
        MODEL_JOB_THREADS = max(1, workflow.cores)
    except WorkflowError:  # cluster executors define no total core count: the profile's set-threads decides
        MODEL_JOB_THREADS = 1
    # a cluster job asks its scheduler for a GPU (the Slurm profile sets it too); a local one needs no count
    MODEL_JOB_GPUS = 1 if DEVICE == "cuda" and not workflow.local_exec else 0

# torch.compile's caches in a folder of the run, for every job (jobs inherit the environment; on a cluster the
# job's own parse of this file sets it again, relative to the same working directory)
os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.abspath(config["compile_cache"])

# The GPU type that every GPU rule (the rules that run the model, with `threads: MODEL_JOB_THREADS`) and no
# other asks a cluster for: config `gpu_model`, which the Slurm plugin turns into `--gpus=<type>:<count>`.
# Local runs ignore it.
GPU_TYPE = {"gpu_model": config["gpu_model"]} if config.get("gpu_model") else {}

# The software of every job that runs the project's Python, for `--sdm conda` (same pins as pyproject.toml;
# relative to the rules files). Without --sdm conda it is not used.
CONDA_ENV = "../envs/inferbench.yaml"

# Per registered engine: served or not, and its in-process twin (the aggregate step writes both as columns).
ENGINE_ROLES = engines.roles(config)


wildcard_constraints:
    engine="|".join(ENGINES),
    precision="fp32|fp16|bf16",
    batch_size=r"\d+",
    seq_len=r"\d+",
    padding="max_length|dynamic",


def artifact_path(kind, wildcards):
    """The file or folder of one kind of exported model for a job: its rule's output, wildcards filled in."""
    artifact = ARTIFACTS[kind]
    pattern = getattr(rules, artifact.rule).output[artifact.output]
    return pattern.format(**{**wildcards, **dict(artifact.wildcards)})


def engine_artifacts(wildcards):
    """Exported models the engine of this job loads (and files its settings name), as named inputs."""
    entry = ENGINES[wildcards.engine]
    inputs = {kind: artifact_path(kind, wildcards) for kind in entry.artifacts}
    return {**inputs, **(entry.config_inputs(config) if entry.config_inputs else {})}


def engine_settings(wildcards):
    """The engine's settings that can change its results, as its settings dataclass names them (those that
    cannot, such as a server's timeouts, reach it as SERVER_RESOURCES)."""
    return engines.settings_from_config(wildcards.engine, config)


# Settings that cannot change a result reach the jobs as resources, which trigger no rerun when they change
# (params do); `--set-resources <rule>:<name>=<value>` also sets them per rule.
def server_resource(name):
    """A served engine's setting that cannot change a result (its server's timeouts, from its own config
    section), as a resource of the job; 0 for in-process engines, which start no server."""

    def value(wildcards):
        return engines.settings_from_config(wildcards.engine, config, resources=True).get(name, 0)

    return value


SERVER_RESOURCES = {
    "server_startup_timeout_s": server_resource("startup_timeout_s"),
    "server_stop_grace_s": server_resource("stop_grace_s"),
}
NSYS_RESOURCES = {
    "nsys_executable": config["profiling"]["nsys"]["executable"],
    "nsys_timeout_s": config["profiling"]["nsys"]["timeout_s"],
}


def precision_tolerance(wildcards):
    return tolerance(EXPERIMENT, wildcards.precision)


BENCH_RESULTS = [
    "results/bench/{engine}/{precision}/bs{batch_size}_seq{seq_len}_{padding}.json".format(**cell)
    for cell in cells(SWEEP)
]
ACCURACY_RESULTS = sorted(
    {
        "results/accuracy/{engine}/{precision}/seq{seq_len}_{padding}.json".format(**cell)
        for cell in cells(SWEEP)
    }
)
# The concurrency sweep, for the served engines whose registry entry says it can drive them
LOAD_RESULTS = [
    f"results/serving/{engine}/{precision}/seq{seq_len}_c{concurrency}.json"
    for engine in SWEEP["engines"]
    if ENGINES[engine].load_sweep
    for precision in SWEEP["precisions"]
    for seq_len in SWEEP["seq_lens"]
    for concurrency in config["triton"]["load"]["concurrency"]
]
# Profiling: which cells, with which tools (rules/profiling.smk)
PROFILING = EXPERIMENT["profiling"]


def profile_settings(wildcards):
    return profiling_settings(EXPERIMENT, wildcards.padding)


PROFILE_TOOLS = [tool for tool, on in (("torch", PROFILING["torch_profiler"]), ("nsys", PROFILING["nsys"]["enabled"])) if on]
PROFILE_RESULTS = [
    "results/profile/{tool}/{engine}/{precision}/bs{batch_size}_seq{seq_len}_{padding}.json".format(tool=tool, **cell)
    for tool in PROFILE_TOOLS
    for cell in profiled_cells(EXPERIMENT)
]
if workflow.is_main_process:
    for _line in deployment.absent_tools(EXPERIMENT, nsys_profiles=DEVICE == "cuda" and "nsys" in PROFILE_TOOLS
                                         and bool(PROFILE_RESULTS)):
        logger.warning(_line)
# The earlier run's cells that compare_with names ("" when none)
COMPARE_WITH_TABLE = f"{config['compare_with']}/aggregate/cells.csv" if config.get("compare_with") else ""
if COMPARE_WITH_TABLE and not os.path.isfile(COMPARE_WITH_TABLE):
    raise WorkflowError(f"Invalid config: compare_with: {config['compare_with']} holds no aggregate/cells.csv "
                        "(give the results folder of a finished run)")
if COMPARE_WITH_TABLE and missing_compared_columns(COMPARE_WITH_TABLE):
    raise WorkflowError(f"Invalid config: compare_with: {COMPARE_WITH_TABLE} lacks the column(s) "
                        f"{', '.join(missing_compared_columns(COMPARE_WITH_TABLE))} that a comparison reads (a "
                        "cells.csv from an older inferbench or made by hand?)")
# Side-by-side pairs against the baseline (rules/pairs.smk); the settings every pair job shares
BASELINE = config["report"]["baseline"]
PAIRING = pairing(EXPERIMENT)
PAIR_RESULTS = [
    "results/pairs/{engine}/{precision}/bs{batch_size}_seq{seq_len}_{padding}.json".format(**cell)
    for cell in paired_cells(EXPERIMENT)
]


def pair_roles(wildcards):
    """(role, engine, precision) of the two engines of a pair job."""
    return (("engine", wildcards.engine, wildcards.precision),
            ("baseline", BASELINE["engine"], BASELINE["precision"]))


def pair_artifacts(wildcards):
    """Exported models (and files their settings name) both engines of a pair load, named `<role>_<kind>`."""
    inputs = {}
    for role, engine, precision in pair_roles(wildcards):
        entry, role_wildcards = ENGINES[engine], {**wildcards, "engine": engine, "precision": precision}
        for kind in entry.artifacts:
            inputs[f"{role}_{kind}"] = artifact_path(kind, role_wildcards)
        inputs.update(entry.config_inputs(config) if entry.config_inputs else {})
    return inputs


def pair_artifact_kinds(wildcards):
    return {role: list(ENGINES[engine].artifacts) for role, engine, _ in pair_roles(wildcards)}


def pair_engine_settings(wildcards):
    return {role: engines.settings_from_config(engine, config) for role, engine, _ in pair_roles(wildcards)}


# What the report step reads of the config: baseline, targets, budgets
REPORT = report_settings(EXPERIMENT)
# With strict=true, the run fails after the report when any cell is mismatch or failed.
STRICT_TARGETS = ["results/report/strict_check.passed"] if config["strict"] else []


def deployment_checked(wildcards):
    """Input function of rule all: fails, naming everything missing (Slurm commands, Apptainer, the image),
    when the jobs are planned. Not while this file is read: the executor is known only then (a dry run
    hides it), and this runs before Snakemake checks containers or submits anything."""
    if workflow.is_main_process:
        plugin = workflow.executor_plugin
        executor = None if plugin is None or workflow.dryrun else plugin.name
        apptainer = "APPTAINER" in {method.name for method in workflow.deployment_settings.deployment_method}
        # an engine of the sweep whose settings make it start a server from a container image
        serves_from_image = any(ENGINES[engine].config_inputs and ENGINES[engine].config_inputs(config)
                                for engine in SWEEP["engines"])
        problems = deployment.missing(executor, apptainer, config["container"], serves_from_image=serves_from_image)
        if problems:
            raise WorkflowError("Cannot run here:\n  " + "\n  ".join(problems))
    return []
