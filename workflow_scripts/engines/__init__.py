"""Engine registry: what the rules, the steps, aggregation and the report need to know about each engine.

Generic code asks an engine's `EngineSpec` (served or in-process, protocol, in-process twin, settings,
artifacts), never its name. Importing this module stays cheap (no torch), so the Snakefile reads it at parse
time. To add an engine: write a module with an `Engine` subclass and add one line to `ENGINES` (see README).
"""

import importlib
from dataclasses import asdict, dataclass, fields
from typing import Callable

from workflow_scripts.engines.settings import (CompileSettings, DynamoServerSettings, FusedSettings, NoSettings,
                                              TritonServerSettings)


@dataclass(frozen=True)
class ArtifactSpec:
    """A kind of exported model: the rule output that makes it, the step command lines' option that names it,
    and wildcards fixed by the kind."""

    rule: str                        # the rule that writes it (rules/export.smk, rules/serving.smk)
    output: str                      # the name of that rule's output
    option: str                      # e.g. "torchscript": `--torchscript PATH` on a step's command line
    wildcards: tuple[tuple[str, str], ...] = ()  # e.g. (("backend", "python"),): the rest come from the job


# Kinds of exported model an engine may load; each is one rule's output, verified before any engine uses it.
# (torch.compile's caches and the fused encoder's weights are no such kind: both engines build from the model
# folder, the caches only make that faster.)
ARTIFACTS: dict[str, ArtifactSpec] = {
    "torchscript": ArtifactSpec("export_torchscript", "module", "torchscript"),
    "triton_python": ArtifactSpec("triton_repository", "repository", "repository", (("backend", "python"),)),
    "triton_pytorch": ArtifactSpec("triton_repository", "repository", "repository", (("backend", "pytorch"),)),
}


@dataclass(frozen=True)
class EngineSpec:
    """What generic code needs to know about one engine.

    module, class_name: where its `engines.base.Engine` subclass lives (imported only when a job runs it).
    settings: a dataclass of its options with their defaults (engines/settings.py).
    settings_section: the dotted config section those options are read from; None: `engine_settings.<name>`.
    artifacts: kinds of exported model it loads (keys of ARTIFACTS); each becomes a named input of its jobs.
    served: the model runs behind a server; `run()` is a request (the report's serving section, no PyTorch
        profile of the client, `request_target()` for the load step).
    backend, protocol: for served engines, what the server runs the model with and how requests travel.
    twin: the in-process engine that runs the same model as a served one (serving overhead = the
        difference); an engine name, or a function of the config that returns one.
    config_inputs: a function of the config returning further named input files (e.g. a server image).
    missing_runtime: a function of the config saying why this machine lacks what the engine needs for any
        cell (an optional package, a container runtime), with the command that fixes it; None when nothing
        is missing. Called where the run is planned (cheap: no torch); the cells still run and are
        recorded as skipped with their reason, since a cluster's jobs may run where the runtime is.
    """

    module: str
    class_name: str
    settings: type = NoSettings
    settings_section: str | None = None
    artifacts: tuple[str, ...] = ()
    served: bool = False
    backend: str | None = None
    protocol: str | None = None
    twin: str | Callable[[dict], str] | None = None
    config_inputs: Callable[[dict], dict[str, str]] | None = None
    missing_runtime: Callable[[dict], str | None] | None = None

    @property
    def load_sweep(self) -> bool:
        """Whether the concurrency sweep drives it: served over gRPC (the load clients are threads, and
        tritonclient.http's gevent client is not thread-safe)."""
        return self.served and self.protocol == "grpc"


# Triton's Python backend runs the Hugging Face model, compiled as triton.repository.python_compile_mode says
PYTHON_BACKEND_TWINS = {"none": "eager", "default": "compile-default", "reduce-overhead": "compile-reduce-overhead"}


def _python_backend_twin(config: dict) -> str:
    return PYTHON_BACKEND_TWINS[config["triton"]["repository"]["python_compile_mode"]]


def _triton_image(config: dict) -> dict[str, str]:
    """The server image, when the Apptainer launcher is asked for (rule pull_triton_image pulls it)."""
    triton = config["triton"]
    return {"triton_image": triton["apptainer"]["sif"]} if triton["launcher"] == "apptainer" else {}


def _triton_runtime(backend: str) -> Callable[[dict], str | None]:
    """What the Triton launcher that `triton.launcher` resolves to here lacks for `backend`."""

    def missing(config: dict) -> str | None:
        from workflow_scripts.serving.launchers import missing_runtime

        return missing_runtime(backend, config["triton"])

    return missing


def _triton(backend: str, protocol: str, twin) -> EngineSpec:
    return EngineSpec("workflow_scripts.engines.triton", "TritonEngine", TritonServerSettings, "triton",
                      (f"triton_{backend}",), served=True, backend=backend, protocol=protocol, twin=twin,
                      config_inputs=_triton_image, missing_runtime=_triton_runtime(backend))


def _dynamo_worker_engine(config: dict) -> str:
    """NVIDIA Dynamo's worker runs the in-process engine dynamo.worker_engine names."""
    return config["dynamo"]["worker_engine"]


def _dynamo_runtime(config: dict) -> str | None:
    """NVIDIA Dynamo (the optional extra) or the C compiler for its loopback library, when missing here."""
    from workflow_scripts.serving.dynamo import missing_reason

    return missing_reason()


def _compiler_runtime(config: dict) -> str | None:
    """The compiler torch.compile needs on the run's device, when missing here."""
    from workflow_scripts.engines.compilers import missing_compiler

    return missing_compiler(config["device"])


def _fused_runtime(config: dict) -> str | None:
    """The fused encoder needs a compiler only when it is compiled (engine_settings.fused.compile_mode)."""
    compile_mode = config.get("engine_settings", {}).get("fused", {}).get("compile_mode", "default")
    return None if compile_mode == "none" else _compiler_runtime(config)


ENGINES: dict[str, EngineSpec] = {
    "eager": EngineSpec("workflow_scripts.engines.eager", "EagerEngine"),
    "compile-default": EngineSpec("workflow_scripts.engines.compiled", "CompiledEngine", CompileSettings,
                                  missing_runtime=_compiler_runtime),
    "compile-reduce-overhead": EngineSpec("workflow_scripts.engines.compiled", "CompiledEngine", CompileSettings,
                                  missing_runtime=_compiler_runtime),
    "compile-max-autotune": EngineSpec("workflow_scripts.engines.compiled", "CompiledEngine", CompileSettings,
                                  missing_runtime=_compiler_runtime),
    "torchscript": EngineSpec("workflow_scripts.engines.torchscript", "TorchScriptEngine",
                              artifacts=("torchscript",)),
    "fused": EngineSpec("workflow_scripts.engines.fused", "FusedEngine", FusedSettings,
                        missing_runtime=_fused_runtime),
    "triton-python-grpc": _triton("python", "grpc", _python_backend_twin),
    "triton-python-http": _triton("python", "http", _python_backend_twin),
    "triton-pytorch-grpc": _triton("pytorch", "grpc", "torchscript"),
    "triton-pytorch-http": _triton("pytorch", "http", "torchscript"),
    "dynamo-grpc": EngineSpec("workflow_scripts.engines.dynamo", "DynamoEngine", DynamoServerSettings, "dynamo",
                              served=True, backend="dynamo", protocol="grpc", twin=_dynamo_worker_engine,
                              missing_runtime=_dynamo_runtime),
}


def spec(name: str) -> EngineSpec:
    """The registry entry of an engine; KeyError naming the known engines when there is none."""
    if name not in ENGINES:
        raise KeyError(f"unknown engine {name!r}; known engines: {', '.join(ENGINES)}")
    return ENGINES[name]


def settings_section(name: str) -> list[str]:
    """The config keys, outermost first, of the section an engine's settings come from."""
    section = spec(name).settings_section
    return section.split(".") if section else ["engine_settings", name]


def setting_keys(name: str) -> dict[str, list[str]]:
    """Per field of the engine's settings dataclass, its config key path inside the settings section."""
    return {f.name: f.metadata.get("key", f.name).split(".") for f in fields(spec(name).settings)}


def settings_from_config(name: str, config: dict, resources: bool = False) -> dict:
    """An engine's settings from the (effective) config, defaults filled in for keys the config leaves out:
    those that can change a result (what the rules pass as params), or with resources=True those that cannot."""
    section = config
    for key in settings_section(name):
        section = (section or {}).get(key) or {}
    defaults = asdict(spec(name).settings())
    settings = {}
    for f in fields(spec(name).settings):
        if bool(f.metadata.get("resource")) != resources:
            continue
        value = section
        for key in setting_keys(name)[f.name]:
            value = value.get(key) if isinstance(value, dict) else None
        settings[f.name] = defaults[f.name] if value is None else value
    return settings


def with_defaults(name: str, settings: dict | None) -> dict:
    """`settings` over the defaults of the engine's settings dataclass (extra keys, such as a profiler
    wrapper the Nsight Systems step adds, are kept)."""
    return {**asdict(spec(name).settings()), **(settings or {})}


def twin(name: str, config: dict) -> str | None:
    """The in-process engine that runs what a served engine serves (None for in-process engines)."""
    value = spec(name).twin
    return value(config) if callable(value) else value


def missing_runtime(name: str, config: dict) -> str | None:
    """Why this machine lacks what engine `name` needs for any cell, with the fix (None: nothing missing)."""
    check = spec(name).missing_runtime
    return check(config) if check else None


def roles(config: dict) -> dict[str, dict]:
    """Per registered engine: {"served": bool, "twin": engine name or None}, as the aggregate step writes them."""
    return {name: {"served": entry.served, "twin": twin(name, config)} for name, entry in ENGINES.items()}


def engine_class(name: str):
    """The Engine subclass registered under `name` (imports its module: torch and friends)."""
    entry = spec(name)
    return getattr(importlib.import_module(entry.module), entry.class_name)


def create(name: str, settings: dict | None = None, **kwargs):
    """A new, not yet loaded engine; settings default to those of its dataclass. kwargs: see Engine."""
    return engine_class(name)(name=name, settings=with_defaults(name, settings), **kwargs)
