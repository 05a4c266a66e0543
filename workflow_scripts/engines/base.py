"""The one interface every engine implements: load once, then run batches that are already on the device."""

from pathlib import Path

import torch

PRECISION_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class EngineUnavailable(Exception):
    """This engine cannot run this cell here (e.g. fp16 on CPU): the cell is recorded as skipped."""


class Engine:
    def __init__(self, name: str, model_dir: str | Path, device: str, precision: str,
                 settings: dict | None = None, artifacts: dict[str, str] | None = None):
        self.name = name
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
        if self.device == "cpu" and self.precision == "fp16":
            return "fp16 matmuls are not supported on CPU"
        return None

    def load(self) -> None:
        """Build or load the model; everything expensive that is not per-request happens here."""
        raise NotImplementedError

    def run(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits for one batch. Inputs are on the device; the result may be reused by the next call."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"settings": self.settings, "notes": self.notes}


def load_hf_model(model_dir: Path, device: str, dtype: torch.dtype, **kwargs):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=dtype, **kwargs)
    return model.eval().to(device)
