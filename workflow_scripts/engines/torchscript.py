"""A traced, frozen TorchScript module produced by the export step (also what Triton's pytorch backend serves)."""

import torch

from workflow_scripts.engines.base import Engine
from workflow_scripts.export import load_verified_torchscript


class TorchScriptEngine(Engine):
    """The model traced by the export step (artifact `torchscript`), verified against eager before use."""
    def load(self) -> None:
        """The verified TorchScript export (artifact `torchscript`) on the device."""
        self.module = load_verified_torchscript(self.artifacts["torchscript"], self.device)

    @torch.inference_mode()
    def run(self, input_ids, attention_mask):
        """Logits [batch, num_labels] of the traced module."""
        return self.module(input_ids, attention_mask)
