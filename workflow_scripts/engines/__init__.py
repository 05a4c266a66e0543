"""Engine registry: name -> implementing class, and the exported artifacts each engine needs.

Importing this module stays cheap (no torch), so the Snakefile can read names and artifacts at parse time.
To add an engine: write a module with an `Engine` subclass and register it here (see README).
"""

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class EngineSpec:
    module: str
    class_name: str
    artifacts: tuple[str, ...] = ()  # kinds of exported model this engine loads (see rules/export.smk)


ENGINES: dict[str, EngineSpec] = {
    "eager": EngineSpec("workflow_scripts.engines.eager", "EagerEngine"),
    "compile-default": EngineSpec("workflow_scripts.engines.compiled", "CompiledEngine"),
    "compile-reduce-overhead": EngineSpec("workflow_scripts.engines.compiled", "CompiledEngine"),
    "compile-max-autotune": EngineSpec("workflow_scripts.engines.compiled", "CompiledEngine"),
    "torchscript": EngineSpec("workflow_scripts.engines.torchscript", "TorchScriptEngine", ("torchscript",)),
    "fused": EngineSpec("workflow_scripts.engines.fused", "FusedEngine"),
    "triton-python-grpc": EngineSpec("workflow_scripts.engines.triton", "TritonEngine", ("triton_python",)),
    "triton-python-http": EngineSpec("workflow_scripts.engines.triton", "TritonEngine", ("triton_python",)),
    "triton-pytorch-grpc": EngineSpec("workflow_scripts.engines.triton", "TritonEngine", ("triton_pytorch",)),
    "triton-pytorch-http": EngineSpec("workflow_scripts.engines.triton", "TritonEngine", ("triton_pytorch",)),
}


def is_served(name: str) -> bool:
    """Engines behind a server: their settings come from the config's `triton` section."""
    return name.startswith("triton-")


def engine_class(name: str):
    if name not in ENGINES:
        raise KeyError(f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}")
    spec = ENGINES[name]
    return getattr(importlib.import_module(spec.module), spec.class_name)


def create(name: str, **kwargs):
    return engine_class(name)(name=name, **kwargs)
