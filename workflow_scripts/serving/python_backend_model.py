"""Triton Python-backend model: the same Hugging Face model as the in-process engines, run with torch.

Copied into each model repository as `<model>/1/model.py` by workflow_scripts/serving/model_repository.py.
Parameters (config.pbtxt): precision (fp32/fp16/bf16) and compile_mode (none / default / reduce-overhead).
With a compile mode, batches are padded up to power-of-two buckets so that only a few shapes are compiled
(and CUDA-graphed), all during initialize(), before the server reports the model READY.
"""
import json
import os

import numpy as np
import torch
import triton_python_backend_utils as pb_utils
from transformers import AutoModelForSequenceClassification

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.precision = parameters["precision"]
        self.compile_mode = parameters.get("compile_mode", "none")
        self.max_batch_size = config["max_batch_size"]
        self.seq_len = config["input"][0]["dims"][0]
        if args["model_instance_kind"] == "GPU":
            self.device = f"cuda:{args['model_instance_device_id']}"
            torch.cuda.set_device(self.device)
        else:
            self.device = "cpu"
        weights = os.path.join(args["model_repository"], args["model_version"], "hf_model")
        model = AutoModelForSequenceClassification.from_pretrained(
            weights, dtype=DTYPES[self.precision], attn_implementation="sdpa").eval().to(self.device)
        self.model = model
        self.buckets = None
        if self.compile_mode != "none":
            self.model = torch.compile(model, mode=self.compile_mode, fullgraph=True, dynamic=False)
            self.buckets = [b for b in (2 ** i for i in range(16)) if b < self.max_batch_size] + [self.max_batch_size]
            for bucket in self.buckets:  # compile (and capture) every shape before READY
                ids = torch.zeros((bucket, self.seq_len), dtype=torch.int64, device=self.device)
                self._forward(ids, torch.ones_like(ids))

    @torch.inference_mode()
    def _forward(self, input_ids, attention_mask):
        if self.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()

    def execute(self, requests):
        ids = [pb_utils.get_input_tensor_by_name(r, "input_ids").as_numpy() for r in requests]
        masks = [pb_utils.get_input_tensor_by_name(r, "attention_mask").as_numpy() for r in requests]
        sizes = [len(a) for a in ids]
        input_ids = torch.from_numpy(np.concatenate(ids)).to(self.device, non_blocking=True)
        attention_mask = torch.from_numpy(np.concatenate(masks)).to(self.device, non_blocking=True)
        rows = input_ids.shape[0]
        if self.buckets:
            bucket = next(b for b in self.buckets if b >= rows)
            pad = bucket - rows
            if pad:
                input_ids = torch.nn.functional.pad(input_ids, (0, 0, 0, pad))
                attention_mask = torch.nn.functional.pad(attention_mask, (0, 0, 0, pad), value=1)
        logits = self._forward(input_ids, attention_mask)[:rows].cpu().numpy()
        responses, start = [], 0
        for size in sizes:
            output = pb_utils.Tensor("logits", logits[start:start + size])
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
            start += size
        return responses
