"""Every step's command line resolves its settings as the pipeline does (experiment.step_config): config.yaml,
--configfile overlays, --config values, the schema check, cpu_overrides on CPU, then the rule's slice; its own
flags only override. Unit tests: each step's work is replaced by a recorder, so nothing is measured."""
import pytest
import yaml

from workflow_scripts import accuracy, aggregate, benchmark, load_sweep, pair
from workflow_scripts.experiment import DEFAULT_CONFIG, ConfigError, step_config
from workflow_scripts.report import build as report_build
from workflow_scripts.serving import model_repository

CONFIG = yaml.safe_load(DEFAULT_CONFIG.read_text())
CELL = ["--model-dir", "m", "--tokens", "t.pt", "--out", "out.json"]


def recorded(monkeypatch, module, function: str) -> dict:
    """Replace module.function by a recorder of its positional arguments."""
    calls = {}
    monkeypatch.setattr(module, function, lambda *args: calls.__setitem__("args", args))
    return calls


def test_a_command_line_cell_on_cpu_is_timed_with_the_cpu_measurement_settings(monkeypatch):
    calls = recorded(monkeypatch, benchmark, "run_cell")
    benchmark.main(["--engine", "eager", "--device", "cpu", "--reference", "r.pt", *CELL])
    cell, measurement = calls["args"][0], calls["args"][6]
    cpu = CONFIG["cpu_overrides"]["measurement"]
    assert cell["device"] == "cpu"
    assert {key: measurement[key] for key in cpu} == cpu  # windows 3, not the GPU's 10
    assert measurement["repeats"] == CONFIG["measurement"]["repeats"]
    # a key the command line sets wins, as a key a run's config sets does
    benchmark.main(["--engine", "eager", "--device", "cpu", "--reference", "r.pt", "--measurement", "windows=7",
                    *CELL])
    assert calls["args"][6]["windows"] == 7


def test_a_bf16_command_line_cell_gets_the_bf16_tolerance(monkeypatch):
    calls = recorded(monkeypatch, benchmark, "run_cell")
    benchmark.main(["--engine", "eager", "--precision", "bf16", "--device", "cpu", "--reference", "r.pt", *CELL])
    assert calls["args"][7] == CONFIG["correctness"]["tolerance"]["bf16"]
    calls = recorded(monkeypatch, accuracy, "evaluate")
    accuracy.main(["--engine", "eager", "--precision", "bf16", "--device", "cpu", "--reference", "r.pt",
                   "--max-abs-diff", "0.5", *CELL])
    cell, tolerance = calls["args"][0], calls["args"][6]
    assert tolerance == {**CONFIG["correctness"]["tolerance"]["bf16"], "max_abs_diff": 0.5}
    assert cell["batch_size"] == CONFIG["correctness"]["batch_size"]


@pytest.mark.parametrize("overlay, flags, message", [
    ({"measurement": {"window": 7}}, [],
     "measurement: Additional properties are not allowed ('window' was unexpected)"),
    ({"measurement": {"windows": 0}}, [], "measurement.windows: 0 is less than the minimum of 1"),
    ({}, ["--measurement", "windows=none"], "measurement.windows: 'none' is not of type 'integer'"),
])
def test_a_bad_overlay_is_refused_with_the_schemas_message(monkeypatch, tmp_path, capsys, overlay, flags, message):
    calls = recorded(monkeypatch, benchmark, "run_cell")
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    with pytest.raises(SystemExit) as stop:
        benchmark.main(["--engine", "eager", "--device", "cpu", "--reference", "r.pt", "--configfile", str(path),
                        *flags, *CELL])
    assert stop.value.code == 2 and not calls
    assert message in capsys.readouterr().err


def test_configfile_and_config_values_layer_as_snakemakes(tmp_path):
    path = tmp_path / "overlay.yaml"
    path.write_text("report: {baseline: {engine: compile-default}}\nsweep: {engines: [eager, compile-default]}\n")
    experiment = step_config([str(path)], ["pairs={rounds: 9}"], device="cpu")
    assert experiment["report"]["baseline"] == {"engine": "compile-default", "precision": "fp32"}
    assert experiment["pairs"]["rounds"] == 9  # set by the user: cpu_overrides leaves it
    assert experiment["pairs"]["repeats"] == CONFIG["cpu_overrides"]["pairs"]["repeats"]
    with pytest.raises(ConfigError, match="report.baseline.engine is 'fused', which is not in sweep.engines"):
        step_config([str(path)], ["report={baseline: {engine: fused}}"], device="cpu")
    with pytest.raises(ConfigError, match=r"--config pairs.rounds=9: Snakemake takes top-level keys only"):
        step_config(config_values=["pairs.rounds=9"], device="cpu")


def test_pair_report_and_aggregate_read_the_config_not_their_own_defaults(monkeypatch, tmp_path):
    path = tmp_path / "overlay.yaml"
    path.write_text("sweep: {engines: [eager, fused]}\nreport: {baseline: {engine: fused, precision: fp32}, "
                    "latency_budgets_ms: [3]}\ndynamo: {worker_engine: fused}\n")
    calls = recorded(monkeypatch, pair, "run_pair")
    pair.main(["--engine", "eager", "--device", "cpu", "--configfile", str(path), *CELL])
    baseline, pairing = calls["args"][1], calls["args"][7]
    assert baseline == {"engine": "fused", "precision": "fp32"}
    assert pairing["rounds"] == CONFIG["cpu_overrides"]["pairs"]["rounds"]
    calls = recorded(monkeypatch, report_build.context, "load")
    monkeypatch.setattr(report_build, "build", lambda *args: None)
    report_build.main(["--table", "c", "--serving", "s", "--profiles", "p", "--profile-tops", "pt", "--peaks", "k",
                       "--dataset-info", "d", "--model-dir", "m", "--out-dir", str(tmp_path),
                       "--configfile", str(path)])
    assert calls["args"][7] == {"engine": "fused", "precision": "fp32"}
    assert calls["args"][9] == {"latency_ms": [3], "percentile": CONFIG["report"]["budget_percentile"]}
    calls = recorded(monkeypatch, aggregate, "aggregate")
    monkeypatch.setattr(aggregate, "with_pieces", lambda tables, pieces, roles: [])
    aggregate.main(["r.json", "--out", "cells.csv", "--configfile", str(path)])
    assert calls["args"][1]["dynamo-grpc"]["twin"] == "fused"


def test_served_steps_take_the_configs_load_and_repository_settings(monkeypatch):
    calls = recorded(monkeypatch, load_sweep, "sweep")
    load_sweep.main(["--engine", "dynamo-grpc", "--device", "cpu", "--model-dir", "m", "--tokens", "t.pt",
                     "--out-prefix", "level"])
    load, outs = calls["args"][5], calls["args"][6]
    assert load == CONFIG["triton"]["load"]
    assert outs == [f"level_c{n}.json" for n in CONFIG["triton"]["load"]["concurrency"]]
    load_sweep.main(["--engine", "dynamo-grpc", "--device", "cpu", "--model-dir", "m", "--tokens", "t.pt",
                     "--out-prefix", "level", "--concurrency", "2", "8"])
    assert calls["args"][5]["concurrency"] == [2, 8] and calls["args"][6] == ["level_c2.json", "level_c8.json"]
    calls = recorded(monkeypatch, model_repository, "build")
    model_repository.main(["--backend", "python", "--device", "cpu", "--model-dir", "m", "--out", "repo"])
    assert calls["args"][6] == CONFIG["triton"]["repository"]


def test_every_kind_of_exported_model_has_one_option_on_every_step_that_loads_an_engine(monkeypatch, capsys):
    """--torchscript (the export) and --repository (a Triton model repository) on the cell steps, the load
    sweep and, with baseline- in front, for the pair's baseline; an engine's file left out is refused by its
    option's name before any work."""
    calls = recorded(monkeypatch, benchmark, "run_cell")
    benchmark.main(["--engine", "triton-python-grpc", "--device", "cpu", "--reference", "r.pt",
                    "--repository", "repo", *CELL])
    assert calls["args"][4] == {"triton_python": "repo"}
    benchmark.main(["--engine", "torchscript", "--device", "cpu", "--reference", "r.pt", "--torchscript", "ts.pt",
                    *CELL])
    assert calls["args"][4] == {"torchscript": "ts.pt"}
    calls = recorded(monkeypatch, pair, "run_pair")
    pair.main(["--engine", "torchscript", "--torchscript", "ts.pt", "--baseline-engine", "torchscript",
               "--baseline-precision", "fp32", "--baseline-torchscript", "base.pt", "--device", "cpu", *CELL])
    assert calls["args"][4] == {"engine": {"torchscript": "ts.pt"}, "baseline": {"torchscript": "base.pt"}}
    calls = recorded(monkeypatch, load_sweep, "sweep")
    load_sweep.main(["--engine", "triton-python-grpc", "--device", "cpu", "--model-dir", "m", "--tokens", "t.pt",
                     "--out-prefix", "level", "--repository", "repo"])
    assert calls["args"][3] == {"triton_python": "repo"}
    for step, argv, option in [
            (benchmark, ["--engine", "triton-python-grpc", "--reference", "r.pt", *CELL], "--repository"),
            (pair, ["--engine", "eager", "--baseline-engine", "torchscript", *CELL], "--baseline-torchscript")]:
        with pytest.raises(SystemExit):
            step.main([*argv, "--device", "cpu"])
        assert f"name it with {option} PATH" in capsys.readouterr().err


def test_the_schema_declares_no_defaults():
    """config.yaml holds every default; checked_config validates without filling any, so a `default:` added
    to the schema would reach neither the Snakefile nor a command line."""
    from workflow_scripts.experiment import CONFIG_SCHEMA

    def defaults(node):
        if isinstance(node, dict):
            return ("default" in node and not isinstance(node["default"], dict)) + sum(map(defaults, node.values()))
        return sum(map(defaults, node)) if isinstance(node, list) else 0

    assert defaults(yaml.safe_load(CONFIG_SCHEMA.read_text())) == 0
