import yaml

from conftest import REPO
from workflow_scripts.engines import ENGINES, create, engine_class
from workflow_scripts.engines.base import Engine


def test_registry_and_config_schema_name_the_same_engines():
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    assert schema["$defs"]["engine"]["enum"] == list(ENGINES)


def test_every_registered_engine_implements_the_interface():
    for name in ENGINES:
        cls = engine_class(name)
        assert issubclass(cls, Engine)
        assert cls.load is not Engine.load and cls.run is not Engine.run, name


def test_every_artifact_kind_has_a_path_in_the_rules():
    common = (REPO / "rules" / "common.smk").read_text()
    for spec in ENGINES.values():
        for kind in spec.artifacts:
            assert f'"{kind}": "results/' in common, kind


def test_reduce_overhead_on_cpu_says_it_compiles_like_default(tiny_model):
    root, _ = tiny_model
    engine = create("compile-reduce-overhead", model_dir=root / "model", device="cpu", precision="fp32",
                    settings={"fullgraph": True, "dynamic": None})
    engine.load()
    assert engine.mode == "reduce-overhead"
    assert any("CUDA graphs exist only on CUDA" in note for note in engine.describe()["notes"])
