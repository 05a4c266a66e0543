"""PyTorch eager mode with scaled-dot-product attention: the baseline every other engine is compared to."""

import torch

from workflow_scripts.engines.base import Engine, load_hf_model


class EagerEngine(Engine):
    """The Hugging Face model as it is (SDPA attention), in the cell's dtype: the baseline engine."""
    def load(self) -> None:
        """The saved model with SDPA attention, on the device in the cell's dtype."""
        self.model = load_hf_model(self.model_dir, self.device, self.dtype, attn_implementation="sdpa")

    @torch.inference_mode()
    def run(self, input_ids, attention_mask):
        """Logits [batch, num_labels] of the model's forward."""
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits
