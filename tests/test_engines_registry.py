import re
from dataclasses import asdict, fields

import pytest
import yaml

from conftest import REPO
from workflow_scripts import engines
from workflow_scripts.engines import ARTIFACTS, ENGINES, create, engine_class
from workflow_scripts.engines.base import Engine

SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def test_registry_and_config_schema_name_the_same_engines():
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    assert schema["$defs"]["engine"]["enum"] == list(ENGINES)


def test_every_registered_engine_implements_the_interface():
    for name in ENGINES:
        cls = engine_class(name)
        assert issubclass(cls, Engine)
        assert cls.load is not Engine.load and cls.run is not Engine.run, name


def test_every_artifact_kind_is_the_output_of_a_rule():
    rules = "".join(path.read_text() for path in (REPO / "rules").glob("*.smk"))
    for name, spec in ENGINES.items():
        for kind in spec.artifacts:
            artifact = ARTIFACTS[kind]
            block = re.search(rf"^rule {artifact.rule}:\n(.*?)(?=^\S)", rules, re.M | re.S)
            assert block, f"{name}: {kind} names rule {artifact.rule}, which no rules file defines"
            assert re.search(rf"^\s+{artifact.output}=", block.group(1), re.M), (name, kind, artifact.output)


def schema_section(path: list[str]) -> dict:
    """The schema of a config section, following $refs."""
    node = SCHEMA
    for key in path:
        node = node["properties"][key]
        if "$ref" in node:
            node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


@pytest.mark.parametrize("name", list(ENGINES))
def test_settings_dataclass_matches_the_schema_and_the_default_config(name):
    """Each engine's settings dataclass names exactly the keys its config section may hold for it, and its
    defaults are config.yaml's values: a setting documented in one place and defaulted in another cannot drift."""
    section = schema_section(engines.settings_section(name))
    keys = engines.setting_keys(name)
    for field_name, path in keys.items():  # every field's key path exists in the schema
        node = section
        for key in path:
            assert key in node.get("properties", {}), (name, field_name, path)
            node = node["properties"][key]
    if ENGINES[name].settings_section is None:  # engine_settings.<name> belongs to the engine alone
        assert {path[0] for path in keys.values()} == set(section.get("properties", {})), name
    from_config = {**engines.settings_from_config(name, CONFIG), **engines.settings_from_config(name, CONFIG, True)}
    assert from_config == asdict(ENGINES[name].settings()), name


def test_settings_from_config_fill_defaults_and_keep_only_the_engines_keys():
    config = {"engine_settings": {"fused": {"seq_multiple": 8}},
              "triton": {"launcher": "local", "stop_grace_s": 3, "load": {"client": "python", "seconds": 5}}}
    assert engines.settings_from_config("fused", config)["seq_multiple"] == 8
    assert engines.settings_from_config("fused", config)["compile_mode"] == "default"
    triton = engines.settings_from_config("triton-python-grpc", config)
    assert triton["launcher"] == "local" and triton["client"] == "python" and "load" not in triton
    assert "stop_grace_s" not in triton  # it cannot change a result: a resource, not a param
    assert engines.settings_from_config("triton-python-grpc", config, resources=True) == {
        "startup_timeout_s": 600, "stop_grace_s": 3}


@pytest.mark.parametrize("mode", schema_section(["triton", "repository"])["properties"]["python_compile_mode"]["enum"])
def test_every_served_engine_has_a_registered_in_process_twin(mode):
    config = {**CONFIG, "triton": {**CONFIG["triton"], "repository": {**CONFIG["triton"]["repository"],
                                                                      "python_compile_mode": mode}}}
    roles = engines.roles(config)
    assert set(roles) == set(ENGINES)
    for name, role in roles.items():
        if role["served"]:
            assert ENGINES[name].protocol and not roles[role["twin"]]["served"], name
        else:
            assert role["twin"] is None, name
    assert roles["triton-python-grpc"]["twin"] == engines.PYTHON_BACKEND_TWINS[mode]


# Engine names in generic code: the registry and the engines (and the rules that build their artifacts) only
ENGINE_NAME_PARTS = re.compile(r"\btriton-|\bcompile-|-grpc\b|-http\b|\btorchscript\b|\bfused\b")  # not "refused"
GENERIC_CODE = ["rules/common.smk", "rules/benchmark.smk", "rules/correctness.smk", "rules/profiling.smk",
                "rules/aggregate.smk", "rules/report.smk", "rules/calibration.smk", "rules/dataset.smk",
                "rules/model.smk", "rules/tokens.smk", "workflow_scripts/aggregate.py", "workflow_scripts/roofline.py",
                "workflow_scripts/benchmark.py", "workflow_scripts/accuracy.py",
                "workflow_scripts/profiling/torch_profile.py", "workflow_scripts/profiling/nsys_profile.py",
                *sorted(str(p.relative_to(REPO)) for p in (REPO / "workflow_scripts" / "report").glob("*.py"))]


@pytest.mark.parametrize("path", GENERIC_CODE)
def test_generic_code_never_names_an_engine(path):
    hits = [f"{path}:{number}: {line.strip()}" for number, line in
            enumerate((REPO / path).read_text().splitlines(), 1) if ENGINE_NAME_PARTS.search(line)]
    assert not hits, "\n".join(hits)


def test_reduce_overhead_on_cpu_says_it_compiles_like_default(tiny_model):
    root, _ = tiny_model
    engine = create("compile-reduce-overhead", model_dir=root / "model", device="cpu", precision="fp32",
                    settings={"fullgraph": True, "dynamic": None})
    engine.load()
    assert engine.mode == "reduce-overhead"
    assert any("CUDA graphs exist only on CUDA" in note for note in engine.describe()["notes"])


def test_an_engine_whose_runtime_is_missing_says_why_and_how_to_fix_it(monkeypatch, tmp_path):
    """Asked where the run is planned (rules/common.smk names each such engine once on the console): NVIDIA
    Dynamo without the optional extra, Triton's pytorch backend without Apptainer. In-process engines need
    nothing beyond the project's own packages."""
    import importlib.util
    import shutil

    triton = {**CONFIG["triton"], "apptainer": {**CONFIG["triton"]["apptainer"], "sif": str(tmp_path / "t.sif")}}
    config = {**CONFIG, "triton": {**triton, "launcher": "auto"}}
    real_find_spec, real_which = importlib.util.find_spec, shutil.which
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "dynamo" else real_find_spec(name, *a))
    monkeypatch.setattr(shutil, "which", lambda name, *a: None if name == "apptainer" else real_which(name, *a))
    assert "`bash setup.sh --dynamo`" in engines.missing_runtime("dynamo-grpc", config)
    for name in ("triton-pytorch-grpc", "triton-pytorch-http"):
        reason = engines.missing_runtime(name, config)
        assert "no `apptainer` is on PATH" in reason and "set triton.launcher: apptainer" in reason
    for name in ("eager", "compile-default", "torchscript", "fused", "triton-python-grpc"):
        assert engines.missing_runtime(name, config) is None, name
    # with Apptainer and the pulled image, auto serves from the image; launcher apptainer is the deployment
    # check's to refuse when apptainer is missing
    (tmp_path / "t.sif").write_text("image")
    monkeypatch.setattr(shutil, "which", lambda name, *a: "/usr/bin/apptainer" if name == "apptainer" else real_which(name, *a))
    assert engines.missing_runtime("triton-pytorch-grpc", config) is None
    assert engines.missing_runtime("triton-pytorch-grpc", {**config, "triton": {**triton, "launcher": "apptainer"}}) is None
    # launcher local never has the pytorch backend, Apptainer or not
    local = engines.missing_runtime("triton-pytorch-grpc", {**config, "triton": {**triton, "launcher": "local"}})
    assert "triton.launcher: local takes the tritonserver bundled in nvidia-pytriton here, which" in local


def test_a_triton_pytorch_cell_without_tritons_image_is_skipped_with_the_words_of_the_planning(tmp_path):
    """The job's reason is the planning's console line (launchers.missing_runtime), so the report and the
    console agree; the bundled tritonserver has no pytorch backend."""
    from workflow_scripts.engines.base import EngineUnavailable

    repository = tmp_path / "repository"
    repository.mkdir()
    (repository / "repository.json").write_text('{"status": "ok", "model_name": "m", "seq_len": 32, '
                                                '"settings": {"max_batch_size": 8}}')
    settings = {**engines.settings_from_config("triton-pytorch-grpc", CONFIG), "launcher": "local"}
    engine = create("triton-pytorch-grpc", model_dir=tmp_path, device="cpu", precision="fp32", settings=settings,
                    artifacts={"triton_pytorch": str(repository)})
    with pytest.raises(EngineUnavailable) as raised:
        engine.load()
    assert str(raised.value) == engines.missing_runtime("triton-pytorch-grpc", {**CONFIG, "triton": {
        **CONFIG["triton"], "launcher": "local"}})
    assert "set triton.launcher: apptainer" in str(raised.value)


def test_compiled_engines_without_a_compiler_say_so_when_planned_and_their_cells_are_skipped(monkeypatch,
                                                                                             tiny_model):
    """torch.compile builds C++ on the CPU (g++ or CXX) and Triton launchers on CUDA (cc or CC); without one
    every compiled cell failed in its first call, and nothing was said when the run was planned."""
    import shutil

    from workflow_scripts.engines.base import EngineUnavailable

    compilers = {"g++", "c++", "clang++", "cc", "gcc", "clang"}
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a: None if name in compilers else real_which(name, *a))
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    on_cpu = {**CONFIG, "device": "cpu"}
    for name in ("compile-default", "compile-reduce-overhead", "compile-max-autotune", "fused"):
        assert "no compiler for TorchInductor's C++ kernels (g++ or c++ or clang++ not on PATH)" in \
            engines.missing_runtime(name, on_cpu), name
    assert "apt-get install gcc) or name it in CC" in engines.missing_runtime("compile-default",
                                                                              {**CONFIG, "device": "cuda"})
    uncompiled = {**on_cpu, "engine_settings": {**CONFIG["engine_settings"],
                                                "fused": {**CONFIG["engine_settings"]["fused"], "compile_mode": "none"}}}
    assert engines.missing_runtime("fused", uncompiled) is None
    assert engines.missing_runtime("eager", on_cpu) is None
    root, _ = tiny_model
    engine = create("compile-default", model_dir=root / "model", device="cpu", precision="fp32",
                    settings={"fullgraph": True, "dynamic": None})
    with pytest.raises(EngineUnavailable, match="no compiler for TorchInductor"):
        engine.load()
    # a compiler named in CXX is the one looked for
    monkeypatch.setenv("CXX", "my-cxx")
    assert "(my-cxx not on PATH)" in engines.missing_runtime("compile-default", on_cpu)
