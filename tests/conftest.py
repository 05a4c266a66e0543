import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TEST_CONFIG = REPO / "tests" / "config.test.yaml"

# No test may reach the Hugging Face hub (CI has none): fail in a second instead of timing out.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"


def pytest_collection_modifyitems(items):
    """The real-Slurm tests (tests/test_slurm.py) run last. They leave Slurm's client installed with no
    controller, and Snakemake's Slurm executor plugin, imported by every `snakemake` command whatever its
    executor, then waits on `scontrol show config` (up to its 10-s timeout) at each start."""
    items.sort(key=lambda item: item.path.name == "test_slurm.py")


def snakemake(workdir: Path, *overlays: Path, args=(), check=True, base: Path = REPO / "config.yaml"
              ) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in `workdir` with config.yaml (or `base`), the test config and overlays."""
    configfiles = [str(base), str(TEST_CONFIG), *map(str, overlays)]
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--cores", "2", "--configfile", *configfiles, *args]
    proc = subprocess.run(command, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planning_error(workdir: Path, *overlays: Path) -> Exception | None:
    """Read the project's Snakefile in this process, as `snakemake -n` starts (config.yaml, the test config and
    overlays), and return the error that stops it before any job is planned, or None if it reads. In-process
    through Snakemake's API: a second per case instead of a new interpreter's several."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    configfiles = [REPO / "config.yaml", TEST_CONFIG, *overlays]
    try:
        with SnakemakeApi(OutputSettings(quiet=True)) as api:
            api.workflow(resource_settings=ResourceSettings(cores=2), snakefile=REPO / "Snakefile",
                         config_settings=ConfigSettings(configfiles=configfiles), workdir=workdir).dag()
    except Exception as error:  # noqa: BLE001 -- the error is what the caller checks
        return error
    return None


def path_with_stand_ins() -> str:
    """PATH with the stand-ins first, then this interpreter's bin (as in an activated venv), so that the
    stand-ins and the commands they run natively find this environment's Python and packages."""
    return os.pathsep.join([str(REPO / "tests" / "stand_ins"), os.path.dirname(sys.executable),
                            os.environ["PATH"]])


# Not "not pytest in the command line": servers started by tests carry pytest's temp paths in theirs.
def processes_with(text: str) -> list[str]:
    """Live processes whose command line contains `text` (this test process aside), each as `<pid> <whole
    command line>`: never shortened, since callers look for paths in it, and where the checkout or its
    environment lives decides how long the line is (a server under a ~/.cache/... venv was missed)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").replace("\0", " ")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and int(pid) != os.getpid() and state != "Z":
            found.append(f"{pid} {cmdline}")
    return found


def scheduled_jobs(dry_run_output: str) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table that `snakemake -n` prints ({} when nothing to do)."""
    counts, in_table = {}, False
    for line in dry_run_output.splitlines():
        if line.startswith("Job stats:"):
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] == "total":
                    break
                counts[parts[0]] = int(parts[1])
    return counts


def overlay(tmp_path: Path, name: str, values: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


TINY = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128,
        "vocab_size": 2000}
# A complete measurement section for steps called directly: a few short windows, no real warm-up.
FAST_MEASUREMENT = {"warmup_seconds": 0.0, "stable_windows": 1, "stable_tolerance": 1.0, "warmup_max_seconds": 0.5,
                    "window_seconds": 0.0, "min_window_iters": 3, "windows": 2, "repeats": 2,
                    "max_distinct_batches": 3, "bootstrap_resamples": 100, "regime_min_gap": 0.1, "pin_cpu": False}

# Shaped like real credentials and in the environment of both shared pipelines, so that a leak of either would
# be found wherever it lands (tests/test_faults.py scans every file they write).
FAKE_SECRETS = {"HF_TOKEN": "hf_inferbenchFakeToken7Q2xV9pL4mZ8kR3wN6",
                "AWS_SECRET_ACCESS_KEY": "inferbenchFakeSecret/K7mP2xQ9vL4nR8wZ3tY6bH1cJ5"}
# The fault tests' minimal pipeline (tests/test_faults.py): one engine of each kind the faults need (eager;
# torchscript, for its export; a served one), fp32, batch 1, short measurements, the least profiling (one torch
# profile of eager), no pairs (test_pipeline.py covers them). dataset.source auto: the hub is unreachable in the
# tests, so it runs on the bundled sample, which the report must say first.
MINIMAL = {
    "dataset": {"source": "auto"},
    "sweep": {"engines": ["eager", "torchscript", "triton-python-grpc"], "precisions": ["fp32"], "batch_sizes": [1]},
    "measurement": {**FAST_MEASUREMENT, "max_distinct_batches": 2},
    "triton": {"load": {"concurrency": [1], "seconds": 0.3, "warmup_seconds": 0.1}},
    "profiling": {"engines": ["eager"], "precisions": ["fp32"], "batch_sizes": "ends", "torch_profiler": True,
                  "nsys": {"enabled": False}},
    "pairs": {"engines": []},
}


def snakemake_command(workdir: Path, overlays=(), args=(), cores: int = 2) -> list[str]:
    """The command that runs the project's Snakefile in `workdir` with config.yaml, the test config and
    overlays; `args` (targets too) come before `--configfile`, which takes every word after it."""
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--cores", str(cores), *args, "--configfile", str(REPO / "config.yaml"), str(TEST_CONFIG),
            *map(str, overlays)]


def served_cells(sweep: dict) -> list[str]:
    """The result files of a sweep's cells whose engine is served, padding max_length and seq_len 32 (as in
    every sweep the tests run), for `--prioritize`."""
    from workflow_scripts import engines

    return [f"results/bench/{engine}/{precision}/bs{batch}_seq32_max_length.json" for engine in sweep["engines"]
            if engines.spec(engine).served for precision in sweep["precisions"] for batch in sweep["batch_sizes"]]


@pytest.fixture(scope="session")
def pipeline_runs(tmp_path_factory) -> dict:
    """The two pipelines the end-to-end tests share, run at the same time in two working directories, both with
    FAKE_SECRETS in their environment: "full", the test config on CPU as on a node with two GPUs
    (`--resources gpu=2` makes two stand-in cards, so model jobs run two at a time, one per card), and
    "minimal", the fault tests' MINIMAL overlay on one core. Each is mostly interpreter start and imports, one
    job per core, so side by side they take less than one after the other; and tests/test_faults.py checks that
    two pipelines at once do not collide (their servers, run first in each, up at the same time). Each run:
    {"workdir", "overlays", "returncode", "stdout", "stderr"}."""
    root = tmp_path_factory.mktemp("pipelines")
    minimal = overlay(root, "minimal", MINIMAL)
    full_sweep = yaml.safe_load(TEST_CONFIG.read_text())["sweep"]
    # each serves first (its served cells right after what they need), so that servers of both are up at once
    plans = {"full": ([], ["--resources", "gpu=2", "--prioritize", *served_cells(full_sweep)], 2),
             "minimal": ([minimal], ["--prioritize", *served_cells(MINIMAL["sweep"])], 1)}
    runs = {}
    for name, (overlays, args, cores) in plans.items():
        workdir = root / name
        workdir.mkdir()
        # output to files: a full pipe would stall one pipeline while the other is waited for
        with open(root / f"{name}.out", "w") as out, open(root / f"{name}.err", "w") as err:
            process = subprocess.Popen(snakemake_command(workdir, overlays, args, cores), stdout=out, stderr=err,
                                       env={**os.environ, **FAKE_SECRETS})
        runs[name] = {"workdir": workdir, "overlays": overlays, "process": process}
    for name, run in runs.items():
        run["returncode"] = run.pop("process").wait(timeout=1800)
        run["stdout"], run["stderr"] = (root / f"{name}.out").read_text(), (root / f"{name}.err").read_text()
    return runs


@pytest.fixture(scope="session")
def pipeline_run(pipeline_runs):
    """The full pipeline of `pipeline_runs`: its working directory and its finished `snakemake` process."""
    run = pipeline_runs["full"]
    if run["returncode"] != 0:
        raise AssertionError(f"snakemake failed ({run['returncode']}):\n{run['stdout'][-4000:]}\n"
                             f"{run['stderr'][-6000:]}")
    return run["workdir"], subprocess.CompletedProcess([], run["returncode"], run["stdout"], run["stderr"])


DATASET = {"name": "glue", "config": "sst2", "split": "validation", "max_samples": 40, "source": "auto"}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """Dataset rows, a tiny random BERT, tokens (seq 32) and fp32 reference logits, made by the steps."""
    from workflow_scripts import dataset, model, reference, tokens

    root = tmp_path_factory.mktemp("tiny")
    info = dataset.prepare(DATASET, root / "rows.jsonl", root / "info.json")
    model.prepare({"id": "bert-base-uncased", "weights": "auto", "num_labels": 2, "config_overrides": TINY},
                  root / "rows.jsonl", root / "model")
    tokens.tokenize(root / "model", root / "rows.jsonl", 32, root / "tokens.pt")
    reference.compute_reference(root / "model", root / "tokens.pt", "cpu", 16, root / "reference.pt")
    return root, info
