"""Triton Python-backend model: the same Hugging Face model as the in-process engines, run with torch.

Copied into each model repository as `<model>/1/model.py` by workflow_scripts/serving/model_repository.py.
Parameters (config.pbtxt): precision (fp32/fp16/bf16), device (cpu/cuda) and compile_mode (none / default /
reduce-overhead).
With a compile mode, batches are padded up to the next preferred batch size (or max_batch_size) so that only
a few shapes are compiled (and CUDA-graphed), all during initialize(), before the server reports READY.
"""
import json
import os

import torch
import triton_python_backend_utils as pb_utils
from torch.utils.dlpack import from_dlpack, to_dlpack
from transformers import AutoModelForSequenceClassification

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TritonPythonModel:
    """The model Triton's Python backend loads: initialize() once, execute() per batch of requests."""
    def initialize(self, args):
        """Load the model from config.pbtxt's parameters (precision, device, compile_mode) and, with a compile
        mode, compile and warm every padded batch shape before the server reports READY."""
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.precision = parameters["precision"]
        self.compile_mode = parameters.get("compile_mode", "none")
        self.max_batch_size = config["max_batch_size"]
        self.seq_len = config["input"][0]["dims"][0]
        if parameters.get("device", "cpu") == "cuda" or args["model_instance_kind"] == "GPU":
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
            # pad to the preferred batch sizes the dynamic batcher aims for: few shapes, each captured once
            preferred = config.get("dynamic_batching", {}).get("preferred_batch_size", [])
            self.buckets = sorted({1, self.max_batch_size, *(b for b in preferred if b <= self.max_batch_size)})
            # one compiled graph per bucket: past Dynamo's recompile limit (default 8) later buckets would run
            # uncompiled without a word; fail instead if that ever happens
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, len(self.buckets) + 8)
            torch._dynamo.config.fail_on_recompile_limit_hit = True
        # Static inputs: the rows of a batch are gathered into one host buffer (pinned on CUDA), sent with one
        # copy into one device buffer, and each bucket runs on a view of it: no per-batch allocation, concatenation
        # or padding, and the CUDA graphs always read the same addresses. Rows past a batch keep earlier rows
        # (valid tokens, mask 1): padding whose logits are never returned.
        on_cuda = self.device != "cpu"
        self.staging = torch.zeros((2, self.max_batch_size, self.seq_len), dtype=torch.int64, pin_memory=on_cuda)
        self.staging[1] = 1
        self.inputs = self.staging.to(self.device) if on_cuda else self.staging
        for bucket in self.buckets or ():  # compile (and capture) every shape before READY
            self._forward(self.inputs[0, :bucket], self.inputs[1, :bucket])

    @torch.inference_mode()
    def _forward(self, input_ids, attention_mask):
        if self.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()

    def execute(self, requests):
        """One response per request: input_ids, attention_mask int64 [n, seq] in, logits float32 [n, num_labels]
        out, all requests run as one batch (tensors cross through DLPack)."""
        # Tensors cross the backend through DLPack, not numpy: the backend stub is built against numpy 1, and
        # with numpy 2 installed its numpy outputs came back empty.
        sizes, rows = [], 0
        for request in requests:
            ids = _torch(pb_utils.get_input_tensor_by_name(request, "input_ids"))
            self.staging[0, rows:rows + len(ids)] = ids
            self.staging[1, rows:rows + len(ids)] = _torch(pb_utils.get_input_tensor_by_name(request, "attention_mask"))
            sizes.append(len(ids))
            rows += len(ids)
        width = next(b for b in self.buckets if b >= rows) if self.buckets else rows
        if self.inputs is not self.staging:
            self.inputs[:, :width].copy_(self.staging[:, :width], non_blocking=True)
        logits = self._forward(self.inputs[0, :width], self.inputs[1, :width])[:rows].cpu()
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor.from_dlpack("logits", to_dlpack(chunk))])
                for chunk in torch.split(logits, sizes)]


def _torch(tensor) -> torch.Tensor:
    return from_dlpack(tensor.to_dlpack())
