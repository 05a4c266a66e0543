# inferbench: which way of running this transformer is fastest on our GPUs, by how much, and why.
# This file only loads and checks the config and includes one rules file per stage.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


# Used only with --software-deployment-method apptainer (the SLURM profile's default); see README. Read with
# get(): a config without it (config.yaml not read) is named by the checks in rules/common.smk.
container: config.get("container")


include: "rules/common.smk"
include: "rules/dataset.smk"
include: "rules/model.smk"
include: "rules/tokens.smk"
include: "rules/export.smk"
include: "rules/correctness.smk"
include: "rules/serving.smk"
include: "rules/benchmark.smk"
include: "rules/pairs.smk"
include: "rules/profiling.smk"
include: "rules/calibration.smk"
include: "rules/aggregate.smk"
include: "rules/report.smk"


rule all:
    input:
        deployment_checked,
        rules.report.output,
        STRICT_TARGETS,
        # Every result by name as well: Snakemake plans a missing file only where a job that uses it must run
        # anyway, so a result deleted (or left unwritten by a killed job) after the report was made would be
        # left out; asked for here, it is made again, then aggregate and report.
        BENCH_RESULTS,
        ACCURACY_RESULTS,
        LOAD_RESULTS,
        PROFILE_RESULTS,
    default_target: True
