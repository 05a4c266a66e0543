"""A bad config fails before any job runs, with a message that names the key."""
import os
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, TEST_CONFIG, overlay, path_with_stand_ins, planning_error, snakemake
from workflow_scripts.experiment import schema_errors

DEFAULT_CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())

BAD_CONFIGS = [
    ("unknown engine", {"sweep": {"engines": ["eager", "warp-drive"]}}, "sweep.engines[1]"),
    ("unknown precision", {"sweep": {"precisions": ["fp8"]}}, "sweep.precisions[0]"),
    ("batch size 0", {"sweep": {"batch_sizes": [0]}}, "sweep.batch_sizes[0]"),
    ("negative batch size", {"sweep": {"batch_sizes": [4, -1]}}, "sweep.batch_sizes[1]"),
    ("empty sweep", {"sweep": {"batch_sizes": []}}, "sweep.batch_sizes"),
    ("negative iterations", {"measurement": {"min_window_iters": -5}}, "measurement.min_window_iters"),
    ("typo in a key", {"measurement": {"warmup_iters": 3}}, "'warmup_iters' was unexpected"),
    ("warm-up cap below its minimum", {"measurement": {"warmup_seconds": 5, "warmup_max_seconds": 2}},
     "measurement.warmup_max_seconds (2) is below"),
    ("typo at top level", {"sweeps": {}}, "'sweeps' was unexpected"),
    ("wrong type", {"sweep": {"seq_lens": ["long"]}}, "sweep.seq_lens[0]"),
    ("unknown device", {"device": "tpu"}, "device"),
    ("piece without tables", {"merge_pieces": ["pieces/a/results"]}, "merge_pieces[0]: pieces/a/results has no"),
    ("baseline not in sweep", {"report": {"baseline": {"engine": "torchscript", "precision": "fp32"}},
                               "sweep": {"engines": ["eager"]}}, "report.baseline.engine"),
    # checks of the model and the data, also before any job (once they failed inside a job, or not at all)
    ("seq_len beyond the model's positions", {"sweep": {"seq_lens": [32, 1024]}},
     "sweep.seq_lens has 1024, but bert-base-uncased has max_position_embeddings 512"),
    ("seq_len beyond overridden positions", {"model": {"config_overrides": {"max_position_embeddings": 16}}},
     "sweep.seq_lens has 32, but bert-base-uncased has max_position_embeddings 16"),
    ("unresolvable model id offline", {"model": {"id": "my-org/sst2-classifier"}},
     "model.id 'my-org/sst2-classifier': its config.json is neither a local folder, nor in the Hugging Face cache"),
    ("batch larger than max_samples", {"dataset": {"max_samples": 3}},
     "sweep.batch_sizes has 4, more than dataset.max_samples (3): every batch would repeat rows"),
    ("profiling selection neither all nor a list", {"profiling": {"engines": "none"}},
     "profiling.engines: 'none' is not allowed; allowed: 'all'; or a list of 'eager', 'compile-default'"),
    ("number as text in a file", {"triton": {"startup_timeout_s": "fast"}}, "triton.startup_timeout_s"),
]


@pytest.mark.parametrize("name,values,expected", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, name, values, expected):
    """Snakefile read in-process (conftest.planning_error); the console form of the same error is checked by
    the subprocess runs below (unknown engine, the Slurm profile, a mistyped override)."""
    error = planning_error(tmp_path, overlay(tmp_path, "bad", values))
    assert error is not None, f"{name}: the Snakefile read without an error"
    assert "Invalid config" in str(error)
    assert expected in str(error)
    assert not (tmp_path / "results").exists()


def test_unknown_engine_message_lists_the_allowed_values(tmp_path):
    proc = snakemake(tmp_path, overlay(tmp_path, "bad", {"sweep": {"engines": ["warp-drive"]}}), args=["-n"],
                     check=False)
    assert "compile-reduce-overhead" in proc.stderr + proc.stdout


def test_good_config_plans_every_cell(tmp_path):
    proc = snakemake(tmp_path, args=["-n"])
    assert "Job stats" in proc.stdout


def test_fallbacks_are_named_once_on_the_console_at_the_start(tmp_path):
    """Offline (conftest) with dataset.source and model.weights on auto: one line before the plan; what each
    job then used is its own line (test_steps)."""
    proc = snakemake(tmp_path, overlay(tmp_path, "auto", {"dataset": {"source": "auto"},
                                                          "model": {"weights": "auto"}}), args=["-n"])
    output = proc.stderr + proc.stdout
    assert output.count("Hugging Face hub not reachable") == 1
    assert "local cache, else" not in output  # no hedge: the jobs say what they used


def test_fallback_notes_name_only_what_applies():
    from workflow_scripts.experiment import fallback_notes

    experiment = {"device": "cpu", "dataset": {"source": "auto"}, "model": {"weights": "auto"}}
    notes = fallback_notes(experiment, "auto", hub_ok=False)
    assert notes == ["No CUDA GPU found: running on CPU, with the narrower sweep of cpu_overrides (config.yaml)",
                     "Hugging Face hub not reachable (or HF_HUB_OFFLINE=1): the dataset job and model job will say "
                     "on this console what they used, the local cache or the bundled sample and random weights, "
                     "when they run"]
    only_model = {**experiment, "dataset": {"source": "sample"}}
    assert fallback_notes(only_model, "cpu", hub_ok=False) == [
        "Hugging Face hub not reachable (or HF_HUB_OFFLINE=1): the model job will say on this console what it "
        "used, the local cache or random weights, when it runs"]
    # the keys cpu_overrides replaces are named, so that an edit of them in config.yaml is not lost unseen
    applied = {"sweep": {"engines": ["eager"], "batch_sizes": [1, 8]}, "pairs": {"rounds": 4}}
    assert fallback_notes(experiment, "auto", hub_ok=True, cpu_applied=applied) == [
        "No CUDA GPU found: running on CPU, with the narrower sweep of cpu_overrides (config.yaml), which replaces "
        "sweep.engines, sweep.batch_sizes, pairs.rounds: to change these on CPU, edit cpu_overrides or give them "
        "with --config or --configfile"]
    # CPU asked for, the hub answering, or the sources fixed in the config: no fallback to name
    assert fallback_notes(experiment, "cpu", hub_ok=True) == []
    fixed = {"device": "cuda", "dataset": {"source": "sample"}, "model": {"weights": "random"}}
    assert fallback_notes(fixed, "auto", hub_ok=False) == []


def test_the_baseline_may_come_from_a_merged_piece(tmp_path):
    """A piece that times only the fast paths can take its baseline from an earlier piece that timed it."""
    piece = tmp_path / "baseline_piece"
    (piece / "aggregate").mkdir(parents=True)
    (piece / "aggregate" / "cells.csv").write_text("engine,precision,batch_size\ntorchscript,fp32,1\n")
    for name in ("serving.csv", "profiles.csv", "profile_tops.csv"):
        (piece / "aggregate" / name).write_text("engine\n")
    values = {"sweep": {"engines": ["eager"]}, "profiling": {"engines": ["eager"]},
              "report": {"baseline": {"engine": "torchscript", "precision": "fp32"}}}
    merged = overlay(tmp_path, "merged", {**values, "merge_pieces": [str(piece)]})
    assert "Job stats" in snakemake(tmp_path, merged, args=["-n"]).stdout
    # a piece without the baseline's cells does not count
    (piece / "aggregate" / "cells.csv").write_text("engine,precision,batch_size\neager,fp32,1\n")
    proc = snakemake(tmp_path, merged, args=["-n"], check=False)
    assert proc.returncode != 0 and "nor in a merged piece" in proc.stderr + proc.stdout


def test_numbers_inside_a_command_line_list_are_numbers(tmp_path):
    """Snakemake reads values inside a --config mapping as text; the README's example must still work."""
    proc = snakemake(tmp_path, args=["-n", "--config", 'sweep={"batch_sizes": [1, 16], "seq_lens": [32]}',
                                     "strict=true", 'dataset={"max_samples": "null"}'])
    assert "results/bench/eager/fp32/bs16_seq32_max_length.json" in proc.stdout
    assert "results/bench/eager/fp32/bs4_seq32_max_length.json" not in proc.stdout
    # a --config mapping merges into its section key by key: the config files' engines stay
    assert "results/bench/torchscript/fp32/bs16_seq32_max_length.json" in proc.stdout
    assert "results/report/strict_check.passed" in proc.stdout
    # a value that is no number stays text and is refused by name
    proc = snakemake(tmp_path, args=["-n", "--config", 'sweep={"batch_sizes": [2, "x"]}'], check=False)
    assert proc.returncode != 0 and "sweep.batch_sizes[1]: 'x' is not of type 'integer'" in proc.stdout + proc.stderr


def test_compare_with_plans_the_comparison_and_a_folder_without_cells_is_named(tmp_path):
    earlier = tmp_path / "earlier"
    proc = snakemake(tmp_path, args=["-n", "--config", f"compare_with={earlier}"], check=False)
    assert proc.returncode != 0 and f"compare_with: {earlier} holds no aggregate/cells.csv" in proc.stderr + proc.stdout
    (earlier / "aggregate").mkdir(parents=True)
    (earlier / "aggregate" / "cells.csv").write_text("engine,precision\n")
    # a table without the columns a comparison reads is named before any job (the compare job once raised a
    # KeyError)
    proc = snakemake(tmp_path, args=["-n", "--config", f"compare_with={earlier}"], check=False)
    assert proc.returncode != 0 and "lacks the column(s) batch_size, seq_len, padding, status" in proc.stderr + proc.stdout
    from workflow_scripts.experiment import COMPARED_COLUMNS

    (earlier / "aggregate" / "cells.csv").write_text(",".join(COMPARED_COLUMNS) + "\n")
    proc = snakemake(tmp_path, args=["-n", "--config", f"compare_with={earlier}", "strict=true"])
    assert "results/report/comparison.csv" in proc.stdout and "rule strict_check" in proc.stdout


def test_profiling_can_be_turned_off_with_an_empty_list(tmp_path):
    proc = snakemake(tmp_path, overlay(tmp_path, "off", {"profiling": {"engines": []}}), args=["-n"])
    assert "profile_torch" not in proc.stdout and "profile_nsys" not in proc.stdout
    assert "benchmark_cell" in proc.stdout
    # the report declares no profile figure it could only draw empty (the load sweep's stays: served engines)
    assert "kernel_breakdown.png" not in proc.stdout and "throughput_vs_concurrency.png" in proc.stdout


def test_a_sweep_key_the_user_sets_wins_over_cpu_overrides(tmp_path):
    """On CPU, cpu_overrides replaces only the keys a config leaves at config.yaml's defaults."""
    overrides = {"cpu_overrides": {"sweep": {"batch_sizes": [1, 8], "engines": ["eager"]}}}
    # the test config sets batch_sizes [1, 4] itself and leaves engines at the default: only engines is replaced
    proc = snakemake(tmp_path, overlay(tmp_path, "cpu", {**overrides, "sweep": {
        "engines": DEFAULT_CONFIG["sweep"]["engines"], "precisions": ["fp32"]}, "profiling": {"engines": []}}),
        args=["-n"])
    planned = {line.split("results/bench/")[1] for line in proc.stdout.splitlines() if "output: results/bench/" in line}
    assert planned == {"eager/fp32/bs1_seq32_max_length.json", "eager/fp32/bs4_seq32_max_length.json"}
    # no served engine: no load sweep, no empty concurrency figure
    assert "latency_vs_batch.png" in proc.stdout and "throughput_vs_concurrency.png" not in proc.stdout
    assert "cpu_overrides leaves sweep.batch_sizes as your config sets them" in proc.stderr + proc.stdout


def test_serving_from_tritons_image_without_apptainer_is_named_before_any_job(tmp_path, monkeypatch):
    """`triton.launcher: apptainer` needs Apptainer where the image is pulled and the jobs run; without it
    the pull job once failed with a bare `apptainer: command not found`."""
    from workflow_scripts import deployment

    monkeypatch.setenv("PATH", str(tmp_path))  # no apptainer, no Slurm
    (problem,) = deployment.missing("local", False, "containers/inferbench.sif", tmp_path, serves_from_image=True)
    assert problem.startswith("triton.launcher: apptainer serves from Triton's image, which needs `apptainer`")
    assert deployment.missing("local", False, "containers/inferbench.sif", tmp_path) == []


def test_the_slurm_profile_with_a_command_line_config_plans_for_cuda_and_names_what_is_missing_here(tmp_path):
    """One dry run (`--profile slurm_profile --config strict=true`, the stand-in apptainer) for two faults.

    The profile once set device=cuda in its `config:` list, which any `--config` replaces: the run then planned
    for CPU (cpu_overrides' narrow sweep). The GPU that the profile's set-resources ask for now decides.

    dynamo-grpc without NVIDIA Dynamo (a `dynamo` package without its frontend shadows the installed one) and
    triton-pytorch-grpc with the bundled tritonserver (no pytorch backend) once passed the dry run silently and
    were only skipped when their jobs ran; so did a GPU run's nsys profiles without nsys, and perf_analyzer
    named as the load client where it cannot run (its cells fail). Now one console line each names the engine
    or setting, why and the fix; the jobs are still planned and record the reason."""
    (tmp_path / "containers").mkdir()
    (tmp_path / "containers" / "inferbench.sif").write_text("stand-in image\n")
    shadow = tmp_path / "shadow" / "dynamo"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    values = {"device": "auto", "sweep": {"engines": ["eager", "dynamo-grpc", "triton-pytorch-grpc", "triton-python-grpc"]},
              "profiling": {"engines": ["eager"], "nsys": {"enabled": True, "executable": "no-such-nsys"}},
              "triton": {"load": {"client": "perf_analyzer", "perf_analyzer": {"executable": "no-such-perf_analyzer"}}}}
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--profile", str(REPO / "slurm_profile"), "--configfile", str(REPO / "config.yaml"), str(TEST_CONFIG),
               str(overlay(tmp_path, "values", values)), "--config", "strict=true", "-n"]
    env = {**os.environ, "PATH": path_with_stand_ins(),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    lines = output.splitlines()
    # the device, and the command line's own value holds too
    assert "Device cuda: the model jobs ask their executor for a GPU each (set-resources gpu)" in lines
    assert "No CUDA GPU found" not in output and "rule strict_check" in output
    # what is missing here, once each
    dynamo = [line for line in lines if line.startswith("dynamo-grpc: its cells will be skipped")]
    assert dynamo == ["dynamo-grpc: its cells will be skipped: NVIDIA Dynamo is not installed: install the optional "
                      "extra with `bash setup.sh --dynamo` (README: Serving with NVIDIA Dynamo)"]
    triton = [line for line in lines if line.startswith("triton-pytorch-grpc: its cells will be skipped")]
    assert len(triton) == 1 and "set triton.launcher: apptainer" in triton[0]
    assert not any(line.startswith(("eager: ", "triton-python-grpc: ")) for line in lines)
    nsys = [line for line in lines if line.startswith("Nsight Systems profiles will be recorded as skipped")]
    assert nsys == ["Nsight Systems profiles will be recorded as skipped: nsys not found (profiling.nsys.executable: "
                    "no-such-nsys); on clusters it often comes from `module load nsight-systems` or the CUDA toolkit's "
                    "bin folder; or set profiling.nsys.enabled: false"]
    client = [line for line in lines if line.startswith("triton.load.client is perf_analyzer, which cannot run here")]
    assert len(client) == 1 and "of triton-pytorch-grpc, triton-python-grpc will fail" in client[0]
    assert client[0].endswith("set triton.load.client: auto (the Python client where perf_analyzer cannot run) or python")
    for engine in ("dynamo-grpc", "triton-pytorch-grpc"):
        assert f"results/bench/{engine}/fp32/bs1_seq32_max_length.json" in proc.stdout
    assert "results/profile/nsys/eager/fp32/bs1_seq32_max_length.json" in proc.stdout


def test_a_mistyped_override_names_the_key_and_the_form_that_works():
    """`--config sweep.batch_sizes=[2,16]` gave Snakemake's bare traceback ("Config entry must start with a valid
    identifier"), before the workflow is read: run.sh checks the entries first (workflow_scripts.command_line).
    What reaches the schema (a nested key at the top level, a section that is no mapping) says the same."""
    from workflow_scripts import command_line
    from workflow_scripts.experiment import load_config

    assert command_line.problems(["--cores", "all", "--config", "sweep.batch_sizes=[2,16]", "strict=true", "-n"]) == [
        '--config sweep.batch_sizes=[2,16]: Snakemake takes top-level keys only, `sweep.batch_sizes` is a dotted '
        'path. Write --config "sweep={batch_sizes: [2,16]}" (the section\'s other keys keep their values), or put '
        "it in a file for --configfile"]
    # an unquoted mapping, split by the shell into words without '='
    split = command_line.problems(["--config", "sweep={batch_sizes:", "[2,", "16]}"])
    assert len(split) == 2 and split[0].startswith("--config '[2,': not key=value. A mapping must be one word")
    assert command_line.problems(["-C", "triton.load.client=python"])[0].startswith(
        '--config triton.load.client=python: Snakemake takes top-level keys only')
    # what Snakemake accepts passes, and words after another option are no entries
    assert command_line.problems(["--config", "sweep={batch_sizes: [2, 16]}", "strict=true", "-n", "all"]) == []
    assert command_line.main(["--config=sweep.seq_lens=[64]"]) == 2 and command_line.main(["-n"]) == 0

    schema = str(REPO / "schemas" / "config.schema.yaml")
    assert schema_errors({**load_config(), "sweep.batch_sizes": [2, 16]}, schema)[0].endswith(
        '`sweep.batch_sizes` is a dotted path, which Snakemake does not read as nesting: nest it, `sweep: {batch_sizes: '
        '[2, 16]}` in a config file, or on the command line --config "sweep={batch_sizes: [2, 16]}" (the section\'s '
        "other keys keep their values)")
    top_level = schema_errors({**load_config(), "batch_sizes": ["2"]}, schema)
    assert top_level == ["(top level): Additional properties are not allowed ('batch_sizes' was unexpected). "
                         "`batch_sizes` is a key of `sweep`, `profiling`, `pairs`, not a top-level key: nest it, "
                         "`sweep: {batch_sizes: ['2']}` in a config file, or on the command line --config "
                         "\"sweep={batch_sizes: ['2']}\" (the section's other keys keep their values)"]
    not_a_mapping = schema_errors({**load_config(), "sweep": ["2", "16"]}, schema)
    assert not_a_mapping[0].endswith("`sweep` takes a mapping of its keys (engines, precisions, batch_sizes, seq_lens, "
                                     "paddings), e.g. --config \"sweep={engines: ...}\" (its other keys keep their values)")
    # an unknown key that is nowhere in the schema gets no hint
    assert schema_errors({**load_config(), "sweeps": {}}, schema) == [
        "(top level): Additional properties are not allowed ('sweeps' was unexpected)"]


def test_a_run_elsewhere_without_config_yaml_says_to_name_it(tmp_path):
    """Snakemake reads config.yaml from the run's working directory: with `--directory` elsewhere and only an
    overlay as --configfile it finds none, and the Snakefile once died on a bare KeyError ('container')."""
    proc = snakemake(tmp_path, args=["-n"], base=TEST_CONFIG, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "KeyError" not in output
    line = next(line for line in output.splitlines() if "missing: config.yaml" in line)
    assert "container" in line.split("missing:")[0]  # among the keys only config.yaml sets
    assert line.endswith(f"missing: config.yaml, which sets them, was not read (Snakemake looks for it in the run's "
                         f"working directory, {tmp_path}). From another folder (--directory, -s) name it first: "
                         f"--configfile {REPO / 'config.yaml'} my_overrides.yaml")


def test_a_configfile_that_is_missing_or_no_yaml_mapping_is_named_before_snakemake_starts(tmp_path):
    """`bash run.sh --configfile nothere.yaml` gave Snakemake's bare 25-line FileNotFoundError traceback, and
    broken YAML "Config file is not valid JSON or YAML" without the file's name."""
    from workflow_scripts import command_line

    broken, listed, good = tmp_path / "broken.yaml", tmp_path / "list.yaml", tmp_path / "good.yaml"
    broken.write_text("sweep: {batch_sizes: [1, 8\n")
    listed.write_text("- eager\n")
    good.write_text("sweep: {batch_sizes: [1]}\n")
    found = command_line.problems(["--configfile", "config.yaml", str(tmp_path / "nothere.yaml"), str(broken),
                                   str(listed), str(good), "-n"])
    assert found[0] == f"--configfile {tmp_path / 'nothere.yaml'}: no such file"
    assert found[1].startswith(f"--configfile {broken}: not readable as YAML: ")
    assert found[2] == f"--configfile {listed}: not a mapping of config keys (it holds a list)"
    assert len(found) == 3  # config.yaml (run from the repository) and good.yaml pass; -n is no file
    assert command_line.problems([f"--configfile={good}"]) == []
    run = subprocess.run(["bash", str(REPO / "run.sh"), "--configfile", "nothere.yaml", "-n"], cwd=REPO,
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.strip() == "inferbench: --configfile nothere.yaml: no such file"
