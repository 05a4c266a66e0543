# Helpers shared by the rule files: the effective experiment, target lists, wildcard constraints.
import os
import sys

# The workflow_scripts package, for this process and for every job's scripts (also inside a container).
sys.path.insert(0, workflow.basedir)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")]))

from snakemake.utils import validate

from workflow_scripts.engines import ENGINES, is_served
from workflow_scripts.experiment import (ConfigError, cells, command_line_booleans, effective, piece_tables,
                                        profiled_cells, schema_errors)

CONFIG_SCHEMA = f"{workflow.basedir}/schemas/config.schema.yaml"
command_line_booleans(config)
# Short messages naming each bad key first; then snakemake's own validation (it also fills defaults).
_problems = schema_errors(config, CONFIG_SCHEMA)
if _problems:
    raise WorkflowError("Invalid config:\n  " + "\n  ".join(_problems))
validate(config, CONFIG_SCHEMA)
try:
    EXPERIMENT = effective(config)
except ConfigError as error:
    raise WorkflowError(f"Invalid config: {error}")

DEVICE = EXPERIMENT["device"]
SWEEP = EXPERIMENT["sweep"]
MEASUREMENT = EXPERIMENT["measurement"]
# Timing jobs take every core given to snakemake, so two never overlap on one machine.
try:
    TIMING_THREADS = max(1, min(workflow.cores or 1, 64))
except WorkflowError:  # cluster executors define no total core count: the profile's set-threads decides
    TIMING_THREADS = 1

# Where each kind of exported model lives; engines name the kinds they need in workflow_scripts/engines.
ARTIFACT_PATHS = {
    "torchscript": "results/export/torchscript/{precision}/seq{seq_len}.pt",
    "triton_python": "results/triton/python/{precision}/seq{seq_len}",
    "triton_pytorch": "results/triton/pytorch/{precision}/seq{seq_len}",
}
SERVED_ENGINES = [engine for engine in SWEEP["engines"] if is_served(engine)]


wildcard_constraints:
    engine="|".join(ENGINES),
    precision="fp32|fp16|bf16",
    batch_size=r"\d+",
    seq_len=r"\d+",
    padding="max_length|dynamic",


def engine_artifacts(wildcards):
    """Exported models the engine of this job loads (and the Triton image it starts), as named inputs."""
    inputs = {kind: ARTIFACT_PATHS[kind] for kind in ENGINES[wildcards.engine].artifacts}
    if is_served(wildcards.engine) and config["triton"]["launcher"] == "apptainer":
        inputs["triton_image"] = config["triton"]["apptainer"]["sif"]
    return inputs


def artifact_kinds(wildcards):
    return list(ENGINES[wildcards.engine].artifacts)


def engine_settings(wildcards):
    if is_served(wildcards.engine):
        triton = config["triton"]
        return {"launcher": triton["launcher"], "apptainer": triton["apptainer"],
                "startup_timeout_s": triton["startup_timeout_s"], "stop_grace_s": triton["stop_grace_s"]}
    return config["engine_settings"].get(wildcards.engine, {})


def tolerance(wildcards):
    return config["correctness"]["tolerance"][wildcards.precision]


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
# The concurrency sweep drives gRPC clients from threads (tritonclient.http's gevent client is not
# thread-safe), so it runs for the gRPC engines.
LOAD_RESULTS = [
    f"results/serving/{engine}/{precision}/seq{seq_len}_c{concurrency}.json"
    for engine in SERVED_ENGINES
    if engine.endswith("-grpc")
    for precision in SWEEP["precisions"]
    for seq_len in SWEEP["seq_lens"]
    for concurrency in config["triton"]["load"]["concurrency"]
]
# The in-process engine that runs what each Triton backend serves: their difference is the serving cost.
SERVING_TWINS = {
    "python": {"none": "eager", "default": "compile-default", "reduce-overhead": "compile-reduce-overhead"}[
        config["triton"]["repository"]["python_compile_mode"]
    ],
    "pytorch": "torchscript",
}
# Profiling: which cells, with which tools (rules/profiling.smk)
PROFILING = EXPERIMENT["profiling"]
PROFILING_SETTINGS = {
    "iterations": PROFILING["iterations"],
    "warmup_iters": PROFILING["warmup_iters"],
    "max_distinct_batches": MEASUREMENT["max_distinct_batches"],
}
PROFILE_TOOLS = [tool for tool, on in (("torch", PROFILING["torch_profiler"]), ("nsys", PROFILING["nsys"]["enabled"])) if on]
PROFILE_RESULTS = [
    "results/profile/{tool}/{engine}/{precision}/bs{batch_size}_seq{seq_len}_{padding}.json".format(tool=tool, **cell)
    for tool in PROFILE_TOOLS
    for cell in profiled_cells(EXPERIMENT)
]
# With strict=true, the run fails after the report when any cell is mismatch or failed.
STRICT_TARGETS = ["results/report/strict_check.passed"] if config["strict"] else []
