"""Each engine's settings: one dataclass per kind of engine, whose defaults are those of config.yaml.

Cheap to import (no torch): the rules read them at parse time. An engine's settings come from the config
section its registry entry names (`EngineSpec.settings_section`), each field from the key of its name or the
dotted path in its metadata `key` (inside the section); keys no field names are not the engine's. Fields whose
metadata says `resource` cannot change a result (a server's timeouts): the rules pass them as resources, not
params, so changing them reruns nothing.
`tests/test_engines_registry.py` checks these defaults against config.yaml and the fields against the
config schema.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NoSettings:
    """Engines without options (eager, TorchScript)."""


@dataclass(frozen=True)
class CompileSettings:
    """torch.compile's arguments (the mode comes from the engine's registry entry)."""

    fullgraph: bool = True        # one graph for the whole forward, or fail (no silent graph breaks)
    dynamic: bool | None = None   # None: Inductor decides when a shape changes


@dataclass(frozen=True)
class FusedSettings:
    """The compact BERT encoder (engines/fused.py)."""

    compile_mode: str = "default"  # none | default | max-autotune-no-cudagraphs
    cuda_graphs: bool = True       # one CUDA graph per input shape (CUDA only)
    seq_multiple: int = 16         # pad dynamic-length batches up to this multiple: fewer shapes to compile
    gelu_epilogue: bool = True     # fp16/bf16: GELU in the GEMM epilogue (tanh approximation on CUDA)


RESOURCE = {"resource": True}  # metadata of a field that cannot change a result


@dataclass(frozen=True)
class TritonServerSettings:
    """How a served engine's job starts its Triton server and sends requests (config section `triton`)."""

    launcher: str = "auto"  # auto | apptainer | local
    apptainer: dict = field(default_factory=lambda: {"image": "docker://nvcr.io/nvidia/tritonserver:25.01-py3",
                                                     "sif": "results/containers/tritonserver.sif"})
    client: str = field(default="auto", metadata={"key": "load.client"})  # auto | perf_analyzer | python
    perf_analyzer: dict = field(default_factory=lambda: {"executable": "perf_analyzer", "stability_percentage": 10,
                                                         "max_trials": 10},
                                metadata={"key": "load.perf_analyzer"})
    startup_timeout_s: float = field(default=600, metadata=RESOURCE)  # until the model is READY
    stop_grace_s: float = field(default=15, metadata=RESOURCE)        # SIGTERM, then SIGKILL after this long


@dataclass(frozen=True)
class DynamoServerSettings:
    """How a dynamo-grpc job starts and stops NVIDIA Dynamo, and what its worker runs (config section `dynamo`)."""

    worker_engine: str = "eager"   # the in-process engine the worker runs (and the served cells' twin)
    worker_settings: dict = field(default_factory=dict)  # that engine's settings; empty: its defaults
    startup_timeout_s: float = field(default=600, metadata=RESOURCE)  # until the frontend reports the model ready
    stop_grace_s: float = field(default=15, metadata=RESOURCE)        # SIGTERM, then SIGKILL after this long
