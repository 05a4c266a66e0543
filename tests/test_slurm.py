"""`snakemake --profile slurm_profile` on a real single-node Slurm with accounting (tests/slurm/).

Jobs run through `--sdm apptainer`, with `apptainer` being the STAND-IN of tests/stand_ins (Apptainer cannot
be installed here): it records its calls and runs each job natively.

Opt-in (`INFERBENCH_REAL_SLURM=1`, which `.ci/run` sets): the cluster changes the machine. As root it
installs slurm-wlm, munge, slurmdbd and mariadb-server with apt-get (they stay installed), writes
/etc/slurm/{slurm,gres,slurmdbd}.conf (the previous ones are restored afterwards) and runs munged, MariaDB,
slurmdbd, slurmctld and slurmd on 127.0.0.1 for the duration of this module.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pandas as pd
import pytest

from conftest import REPO, TEST_CONFIG, overlay, path_with_stand_ins, scheduled_jobs

pytestmark = pytest.mark.slow
SLURM = REPO / "tests" / "slurm"
GPU_RULES = {"export_torchscript", "reference", "accuracy", "benchmark_cell", "load_sweep", "profile_torch", "calibrate",
             "pair"}
LOCAL_RULES = {"dataset", "model"}
OPT_IN = "INFERBENCH_REAL_SLURM"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.environ.get(OPT_IN) != "1":
        pytest.skip(f"a real Slurm cluster is opt-in: {OPT_IN}=1 installs and starts it on this machine "
                    "(see the module docstring); CI sets it")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("the test cluster needs root and apt-get (Debian), as in CI")
    # not under pytest's private (0700) temp dir: the daemons run as other users (munge, mysql)
    state = tempfile.mkdtemp(prefix="inferbench-slurm-", dir="/tmp")
    os.chmod(state, 0o755)
    # two fake GPUs: the node's two cores each run a GPU job, instead of one job at a time on one core
    env = {**os.environ, "SLURM_TEST_DIR": state, "SLURM_TEST_GPUS": "2"}
    try:
        subprocess.run(["bash", str(SLURM / "start_cluster.sh")], check=True, env=env, timeout=600)
        yield state
    finally:
        subprocess.run(["bash", str(SLURM / "stop_cluster.sh")], env=env, timeout=120)
        shutil.rmtree(state, ignore_errors=True)


def slurm_snakemake(workdir, *overlays, args=()):
    """`args` (targets too) come before `--configfile`, which takes every word after it."""
    env = {**os.environ, "PATH": path_with_stand_ins(),
           "APPTAINER_STANDIN_LOG": str(workdir / "apptainer_calls.jsonl")}
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--profile", str(REPO / "slurm_profile"), "--workflow-profile", str(SLURM / "profile"), *args,
               "--configfile", str(REPO / "config.yaml"), str(TEST_CONFIG), str(SLURM / "config.slurm.yaml"),
               *map(str, overlays)]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1500)
    assert proc.returncode == 0, f"{proc.stdout[-5000:]}\n{proc.stderr[-8000:]}"
    return proc


def accounted_jobs() -> pd.DataFrame:
    """Every job Slurm accounted for: rule (from the plugin's job comment), GPUs allocated, their type, state."""
    out = subprocess.run(["sacct", "-n", "-X", "-P", "--format=JobID,Comment,AllocTRES,State"], check=True,
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        job_id, comment, tres, state = line.split("|")
        match = re.match(r"rule_(.+?)(_wildcards_.*)?$", comment)
        rows.append({"job_id": job_id, "rule": match.group(1) if match else comment,
                     "gpus": int(re.search(r"gres/gpu=(\d+)", tres).group(1)) if "gres/gpu=" in tres else 0,
                     "gpu_type": ",".join(re.findall(r"gres/gpu:([^=,]+)=", tres)) or None,
                     "state": state})
    return pd.DataFrame(rows, columns=["job_id", "rule", "gpus", "gpu_type", "state"])


@pytest.fixture(scope="module")
def first_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm-run")
    (workdir / "containers").mkdir()
    (workdir / "containers" / "inferbench.sif").write_text("stand-in image\n")
    proc = slurm_snakemake(workdir)
    return workdir, proc, accounted_jobs()


def test_every_non_local_rule_ran_as_a_slurm_job_gpu_rules_with_a_gpu_of_the_configured_type(first_run):
    """config.slurm.yaml sets `gpu_model: testgpu` once: every GPU rule asks for that type, no other rule
    for any GPU (a `gpu_model` in the profile's default-resources once gave every job a GPU)."""
    workdir, _, jobs = first_run
    assert len(jobs) and (jobs.state == "COMPLETED").all(), jobs
    rules = set(jobs.rule)
    assert rules == {"tokenize", "reference", "accuracy", "benchmark_cell", "triton_repository", "load_sweep",
                     "profile_torch", "calibrate", "pair", "pair_table", "aggregate", "report"}
    assert not rules & LOCAL_RULES
    assert (jobs[jobs.rule.isin(GPU_RULES)].gpus == 1).all()
    assert (jobs[jobs.rule.isin(GPU_RULES)].gpu_type == "testgpu").all(), jobs
    assert (jobs[~jobs.rule.isin(GPU_RULES)].gpus == 0).all()


def test_jobs_went_through_apptainer_with_the_gpu_flag(first_run):
    workdir, _, _ = first_run
    calls = (workdir / "apptainer_calls.jsonl").read_text()
    assert '"exec"' in calls and '"--nv"' in calls and "inferbench.sif" in calls


def test_report_matches_a_local_run(first_run, pipeline_run):
    workdir, _, _ = first_run
    local_workdir, _ = pipeline_run
    slurm_report = (workdir / "results" / "report" / "report.md").read_text()
    local_report = (local_workdir / "results" / "report" / "report.md").read_text()
    # the same sections (their sub-sections depend on which engines the two sweeps profile)
    headings = lambda text: [line for line in text.splitlines() if line.startswith(("# ", "## "))]  # noqa: E731
    assert headings(slurm_report)[1:] == headings(local_report)[1:]
    cells = pd.read_csv(workdir / "results" / "aggregate" / "cells.csv")
    assert set(cells.status) == {"ok"} and len(cells) == 2
    assert cells.slurm_job_id.notna().all()


def test_adding_a_batch_size_plans_only_the_new_cells_and_submits_them(first_run, tmp_path):
    """Planned: the new cells, then aggregate and report (what the first run did stays done). Submitted: one
    new cell, as a job of its own (the first run already proved aggregate and report as Slurm jobs)."""
    workdir, _, before = first_run
    more = overlay(tmp_path, "more", {"sweep": {"batch_sizes": [1, 2]}})
    planned = scheduled_jobs(slurm_snakemake(workdir, more, args=["-n"]).stdout)
    assert planned == {"benchmark_cell": 2, "aggregate": 1, "report": 1, "all": 1}
    new_cell = "results/bench/eager/fp32/bs2_seq32_max_length.json"
    slurm_snakemake(workdir, more, args=[new_cell])
    after = accounted_jobs()
    new = after[~after.job_id.isin(before.job_id)]
    assert list(new.rule) == ["benchmark_cell"] and (new.state == "COMPLETED").all(), new
    assert json.loads((workdir / new_cell).read_text())["status"] == "ok"


def test_the_profile_on_a_machine_without_slurm_names_everything_missing_before_any_job(tmp_path):
    """No Slurm commands, no Apptainer and no image (PATH holds this interpreter's folder and `which`, which
    the executor plugin calls): a real run once printed "No SLURM account given, trying to guess." and hung;
    a dry run named only Apptainer."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "which").symlink_to(shutil.which("which"))
    env = {**os.environ, "PATH": os.pathsep.join([str(tools), os.path.dirname(sys.executable)])}
    tmp_path = tmp_path / "run"
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--profile", str(REPO / "slurm_profile"), "--configfile", str(REPO / "config.yaml"),
               str(TEST_CONFIG)]
    for args in (["-n"], []):
        proc = subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=180)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "Cannot run here:" in output, output[-3000:]
        assert "needs `apptainer` on PATH" in output
        assert "the image `container: containers/inferbench.sif` does not exist" in output
        # only a real run knows its executor (a dry run hides it)
        assert ("the Slurm executor needs sbatch, sacct, squeue, scancel on PATH" in output) == (args == [])
    assert not (tmp_path / "results").exists()


def test_the_documented_way_to_serve_from_the_official_triton_image_plans_its_jobs(tmp_path):
    """README, Running on a cluster: jobs outside the pipeline's image (`--sdm conda`), so that Apptainer
    can start Triton's official image in them, with `triton: {launcher: apptainer}`. It once said `--sdm env`,
    which Snakemake does not have. conda and apptainer are STAND-INs (tests/stand_ins); a dry run."""
    official = overlay(tmp_path, "official_triton", {"triton": {"launcher": "apptainer"}})
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path / "run"),
               "--profile", str(REPO / "slurm_profile"), "--sdm", "conda", "--configfile", str(REPO / "config.yaml"),
               str(TEST_CONFIG), str(official), "-n"]
    proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PATH": path_with_stand_ins()},
                          timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    planned = scheduled_jobs(proc.stdout)
    assert planned["pull_triton_image"] == 1 and planned["benchmark_cell"] > 0 and planned["load_sweep"] > 0
