# Helpers shared by the rule files: the effective experiment, target lists, wildcard constraints.
import sys

sys.path.insert(0, workflow.basedir)  # the workflow_scripts package, also when it is not pip-installed

from snakemake.utils import validate

from workflow_scripts.engines import ENGINES
from workflow_scripts.experiment import ConfigError, cells, effective, schema_errors

CONFIG_SCHEMA = f"{workflow.basedir}/schemas/config.schema.yaml"
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
TIMING_THREADS = max(1, min(workflow.cores or 1, 64))

# Where each kind of exported model lives; engines name the kinds they need in workflow_scripts/engines.
ARTIFACT_PATHS = {
    "torchscript": "results/export/torchscript/{precision}/seq{seq_len}.pt",
}


wildcard_constraints:
    engine="|".join(ENGINES),
    precision="fp32|fp16|bf16",
    batch_size=r"\d+",
    seq_len=r"\d+",
    padding="max_length|dynamic",


def engine_artifacts(wildcards):
    """Exported models the engine of this job loads, as named inputs."""
    return {kind: ARTIFACT_PATHS[kind] for kind in ENGINES[wildcards.engine].artifacts}


def artifact_kinds(wildcards):
    return list(ENGINES[wildcards.engine].artifacts)


def engine_settings(wildcards):
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
FIGURES = ["latency_vs_batch", "throughput_vs_batch", "speedup"]
REPORT_OUTPUTS = ["results/report/report.md", "results/report/report.html"] + [
    f"results/report/figures/{name}.png" for name in FIGURES
]
if config["strict"]:
    REPORT_OUTPUTS.append("results/report/strict_check.passed")
