"""The one interface every engine implements: load once, then run batches that are already on the device."""

from pathlib import Path

import torch

from workflow_scripts.engines import spec

PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class EngineUnavailable(Exception):
    """This engine cannot run this cell here (e.g. fp16 on CPU): the cell is recorded as skipped."""


class Engine:
    """One way of running the model: load() once, run() per batch, close() at the end (README: How to add an engine).

    Constructor: name (the registry key), model_dir (the model step's folder), device ("cpu"/"cuda"),
    precision (fp32/fp16/bf16 -> `dtype`), settings (its EngineSpec.settings dataclass as a dict), artifacts
    (artifact kind -> path), result_path (side files go beside it). Raises EngineUnavailable when
    `unavailable_reason()` names one (the cell is recorded as skipped)."""
    # where input batches must live: None = the engine's device; a served engine takes host memory
    input_device: str | None = None
    # the largest batch the engine accepts (a served model's max_batch_size); None = no limit
    max_batch_size: int | None = None
    # served engines: who sends the requests ({"name": "perf_analyzer" | "python", ...}); None = in-process
    load_client: dict | None = None
    # served engines that perf_analyzer cannot drive: why (their load levels use the Python client)
    perf_analyzer_cannot_drive: str | None = None

    def __init__(self, name: str, model_dir: str | Path, device: str, precision: str,
                 settings: dict | None = None, artifacts: dict[str, str] | None = None,
                 result_path: str | Path | None = None):
        self.name = name
        self.spec = spec(name)  # the registry entry: served, backend, protocol, artifacts
        self.result_path = Path(result_path) if result_path else None  # side files (server logs) go beside it
        self.model_dir = Path(model_dir)
        self.device = device
        self.precision = precision
        self.dtype = PRECISION_DTYPES[precision]
        self.settings = settings or {}
        self.artifacts = artifacts or {}
        self.notes: list[str] = []
        reason = self.unavailable_reason()
        if reason:
            raise EngineUnavailable(reason)

    def unavailable_reason(self) -> str | None:
        """Why this engine cannot run this cell here (the cell is skipped with it), or None; the base refuses fp16
        on CPU. Called by the constructor, so it must be cheap (no model load)."""
        if self.device == "cpu" and self.precision == "fp16":
            return "fp16 matmuls are not supported on CPU"
        return None

    def load(self) -> None:
        """Build or load the model; everything expensive that is not per-request happens here."""
        raise NotImplementedError

    def run(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits for one batch: input_ids and attention_mask int64 [batch, seq] on `input_device` (the engine's
        device unless it says otherwise) -> float logits [batch, num_labels] in the engine's dtype (or
        float32). The result may be overwritten by the next call: callers copy what they keep."""
        raise NotImplementedError

    def request_target(self) -> dict:
        """Served engines: where and what a client sends requests to ({protocol, url, model_name, output}),
        for load clients running in other processes."""
        raise NotImplementedError(f"{self.name} is not served: it has no request target")

    def tool_command(self, argv: list[str]) -> list[str]:
        """A command that must run where the model runs (a profiler's start and stop): as it is, here."""
        return argv

    def begin_window(self) -> None:
        """Called just before the timed iterations (served engines snapshot server statistics here)."""

    def end_window(self) -> dict | None:
        """Called just after them; whatever it returns is stored in the result as `server`."""
        return None

    def timed_by_client(self, batches: list[dict], measurement: dict) -> dict | None:
        """A served engine whose load client times the requests itself (perf_analyzer): after the correctness
        check, {latency, server, latency_split_ms} in the result schema's forms for requests of these batches.
        None (the default): the shared timing loop times run() here."""
        return None

    def close(self) -> None:
        """Release what load() started (a server process); always called, also after errors."""

    def describe(self) -> dict:
        """What the result records of the engine: its settings and notes (subclasses add their own)."""
        return {"settings": self.settings, "notes": self.notes}


# Dynamo's own per-function recompile limit (torch's default), kept as headroom above the shapes counted
DYNAMO_RECOMPILE_HEADROOM = 8


def allow_compiled_shapes(count: int) -> None:
    """Let torch.compile compile `count` distinct input shapes of one function (plus headroom), and make a
    function that still hits the limit raise instead of running uncompiled. Past Dynamo's default limit (8)
    later shapes silently ran eagerly while the cell was recorded as compiled (dynamic padding with many
    batch lengths). The limits are process-wide settings: they are only ever raised."""
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, count + DYNAMO_RECOMPILE_HEADROOM)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, count + DYNAMO_RECOMPILE_HEADROOM)
    config.fail_on_recompile_limit_hit = True


def load_hf_model(model_dir: Path, device: str, dtype: torch.dtype, **kwargs):
    """The Hugging Face sequence classifier saved in model_dir, in eval mode, on `device` in `dtype`."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=dtype, **kwargs)
    return model.eval().to(device)
