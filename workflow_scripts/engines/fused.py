"""A compact BERT encoder built from the same Hugging Face weights, made for few, fat kernels.

Per layer: one GEMM for q, k and v together; attention through scaled_dot_product_attention with the
padding mask as an additive bias (on an NVIDIA H200 with torch 2.11 that ran cuDNN's flash kernel in
bf16/fp16 and the memory-efficient kernel in fp32); the FFN up-projection with bias and GELU in the GEMM epilogue
(cuBLASLt) in half precision; residual add + LayerNorm left to Inductor to fuse into one kernel. On CUDA
the whole forward of each input shape is captured once in a CUDA graph and replayed.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from workflow_scripts.engines.base import Engine, EngineUnavailable, allow_compiled_shapes, load_hf_model
from workflow_scripts.engines.compilers import missing_compiler

# Settings and their defaults: engines.settings.FusedSettings. Compile mode "default" over max-autotune: on an
# NVIDIA H200 (torch 2.11, bert-base geometry, bf16, seq 128) both ran batch 1 in 0.49-0.50 ms and batch 256
# in 11.3-11.5 ms, but max-autotune compiled a shape in 31-77 s, not 4-5 s
COMPILE_MODES = ("none", "default", "max-autotune-no-cudagraphs")
WARMUP_CALLS = 3  # before capture: compiles the shape and lets cuBLAS/SDPA settle on their kernels


def unsupported_reason(config: dict) -> str | None:
    """Why this model's architecture is not what the fused encoder computes, or None."""
    if config.get("model_type") != "bert":
        return (f"the fused engine implements BERT's layout (model_type 'bert'); this model is "
                f"{config.get('model_type')!r}")
    if config.get("hidden_act") != "gelu":
        return (f"the fused engine implements exact GELU (hidden_act 'gelu'); this model's hidden_act is "
                f"{config.get('hidden_act')!r}")
    if config.get("position_embedding_type", "absolute") != "absolute":
        return f"the fused engine implements absolute position embeddings, not {config['position_embedding_type']!r}"
    if config["hidden_size"] % config["num_attention_heads"]:
        return "hidden_size is not a multiple of num_attention_heads"
    return None


class EncoderLayer(nn.Module):
    """One BERT encoder layer of the fused encoder: weights as buffers (qkv_weight [3*hidden, hidden] etc.,
    from the Hugging Face layer), num_heads, LayerNorm eps, and whether GELU follows the GEMM (epilogue)."""
    def __init__(self, weights: dict[str, torch.Tensor], num_heads: int, eps: float, gelu_epilogue: bool):
        super().__init__()
        for name, tensor in weights.items():
            self.register_buffer(name, tensor)
        self.num_heads, self.eps, self.gelu_epilogue = num_heads, eps, gelu_epilogue

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor) -> torch.Tensor:
        """x [batch, seq, hidden] in the model dtype, attn_bias [batch, 1, 1, seq] additive (0 or the dtype's
        minimum for padded keys) -> [batch, seq, hidden]: one QKV GEMM, fused attention, residual + LayerNorm."""
        batch, seq, hidden = x.shape
        qkv = F.linear(x, self.qkv_weight, self.qkv_bias)
        q, k, v = qkv.view(batch, seq, 3, self.num_heads, hidden // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias)
        context = context.transpose(1, 2).reshape(batch, seq, hidden)
        x = F.layer_norm(F.linear(context, self.out_weight, self.out_bias) + x, (hidden,), self.ln1_weight,
                         self.ln1_bias, self.eps)
        flat = x.view(batch * seq, hidden)
        if self.gelu_epilogue:
            # one cuBLASLt GEMM with bias + GELU in its epilogue on CUDA (exact GELU on CPU)
            inner = torch._addmm_activation(self.up_bias, flat, self.up_weight.t(), use_gelu=True)
        else:
            inner = F.gelu(F.linear(flat, self.up_weight, self.up_bias))
        out = F.linear(inner, self.down_weight, self.down_bias).view(batch, seq, hidden)
        return F.layer_norm(out + x, (hidden,), self.ln2_weight, self.ln2_bias, self.eps)


class FusedBertClassifier(nn.Module):
    """BertForSequenceClassification's forward (token types all 0, positions 0..S-1) on fused weights."""

    def __init__(self, state: dict[str, torch.Tensor], config: dict, gelu_epilogue: bool):
        super().__init__()
        emb = "bert.embeddings."
        self.register_buffer("word_embeddings", state[emb + "word_embeddings.weight"])
        self.register_buffer("position_embeddings", state[emb + "position_embeddings.weight"])
        self.register_buffer("token_type_0", state[emb + "token_type_embeddings.weight"][0].clone())
        self.register_buffer("emb_ln_weight", state[emb + "LayerNorm.weight"])
        self.register_buffer("emb_ln_bias", state[emb + "LayerNorm.bias"])
        self.register_buffer("pooler_weight", state["bert.pooler.dense.weight"])
        self.register_buffer("pooler_bias", state["bert.pooler.dense.bias"])
        self.register_buffer("classifier_weight", state["classifier.weight"])
        self.register_buffer("classifier_bias", state["classifier.bias"])
        self.eps = config["layer_norm_eps"]
        self.layers = nn.ModuleList(
            EncoderLayer(layer_weights(state, i), config["num_attention_heads"], self.eps, gelu_epilogue)
            for i in range(config["num_hidden_layers"]))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask int64 [batch, seq] on the model's device -> logits [batch, num_labels] in
        the model's dtype (embeddings, encoder layers, pooler on [CLS], classifier)."""
        seq, hidden = input_ids.shape[1], self.word_embeddings.shape[1]
        x = F.embedding(input_ids, self.word_embeddings) + self.position_embeddings[:seq] + self.token_type_0
        x = F.layer_norm(x, (hidden,), self.emb_ln_weight, self.emb_ln_bias, self.eps)
        # additive bias [B, 1, 1, S] (as Hugging Face builds it): padded keys get the dtype's minimum
        dtype = x.dtype
        attn_bias = (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
        for layer in self.layers:
            x = layer(x, attn_bias)
        pooled = torch.tanh(F.linear(x[:, 0], self.pooler_weight, self.pooler_bias))
        return F.linear(pooled, self.classifier_weight, self.classifier_bias)


def layer_weights(state: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
    """Layer `index`'s weights from a BertForSequenceClassification state dict, q/k/v concatenated to one [3H, H]
    matrix."""
    p = f"bert.encoder.layer.{index}."
    q, k, v = (p + f"attention.self.{name}." for name in ("query", "key", "value"))
    return {
        "qkv_weight": torch.cat([state[q + "weight"], state[k + "weight"], state[v + "weight"]]),  # [3H, H]
        "qkv_bias": torch.cat([state[q + "bias"], state[k + "bias"], state[v + "bias"]]),
        "out_weight": state[p + "attention.output.dense.weight"],
        "out_bias": state[p + "attention.output.dense.bias"],
        "ln1_weight": state[p + "attention.output.LayerNorm.weight"],
        "ln1_bias": state[p + "attention.output.LayerNorm.bias"],
        "up_weight": state[p + "intermediate.dense.weight"],
        "up_bias": state[p + "intermediate.dense.bias"],
        "down_weight": state[p + "output.dense.weight"],
        "down_bias": state[p + "output.dense.bias"],
        "ln2_weight": state[p + "output.LayerNorm.weight"],
        "ln2_bias": state[p + "output.LayerNorm.bias"],
    }


def saved_weights(model_dir: Path, device: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, config) of the saved model folder, the tensors read from its safetensors files straight
    onto `device` (no copy on the host, no transformers import: most of a job's load time). Folders whose
    files lack BertForSequenceClassification's names (other layouts, .bin weights) go through transformers."""
    config = json.loads((model_dir / "config.json").read_text())
    index = model_dir / "model.safetensors.index.json"
    files = (sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file()
             else ["model.safetensors"])
    if all((model_dir / name).is_file() for name in files):
        from safetensors.torch import load_file

        state = {}
        for name in files:
            state.update(load_file(model_dir / name, device=device))
        if {"bert.embeddings.word_embeddings.weight", "classifier.weight", "bert.pooler.dense.weight"} <= set(state):
            return state, config
    hf_model = load_hf_model(model_dir, device, torch.float32)
    return hf_model.state_dict(), hf_model.config.to_dict()


@dataclass
class GraphedShape:
    """One captured CUDA graph per input shape with its static input buffers (int64 [batch, seq]) and the
    logits buffer [batch, num_labels] that each replay overwrites."""
    graph: torch.cuda.CUDAGraph
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    logits: torch.Tensor


class FusedEngine(Engine):
    """The same weights in the compact encoder above (FusedBertClassifier): compiled by Inductor as
    `compile_mode` says and, on CUDA, one CUDA graph per input shape (engine_settings.fused)."""
    def unavailable_reason(self) -> str | None:
        """fp16 on CPU, or a model whose architecture the fused encoder does not compute."""
        reason = super().unavailable_reason()
        config_path = self.model_dir / "config.json"
        if reason is None and config_path.exists():
            reason = unsupported_reason(json.loads(config_path.read_text()))
        return reason

    def load(self) -> None:
        """Fused weights on the device in the cell's dtype, compiled as `compile_mode` says; CUDA graphs are
        captured per shape on first use."""
        options = self.settings  # FusedSettings, defaults filled in by engines.create
        if options["compile_mode"] not in COMPILE_MODES:
            raise ValueError(f"fused compile_mode {options['compile_mode']!r}: expected one of {COMPILE_MODES}")
        state, config = saved_weights(self.model_dir, self.device)
        reason = unsupported_reason(config)
        if reason:
            raise EngineUnavailable(reason)
        # cuBLASLt's GELU epilogue is the tanh approximation: fine within half-precision tolerances,
        # while fp32 keeps the exact GELU to stay within 1e-3 of the reference
        gelu_epilogue = options["gelu_epilogue"] and self.precision != "fp32"
        self.model = FusedBertClassifier(state, config, gelu_epilogue).to(self.device, self.dtype)
        del state
        self.max_positions = config["max_position_embeddings"]
        self.seq_multiple = options["seq_multiple"]
        self.forward = self.model
        self.shapes: set[tuple[int, int]] = set()
        if options["compile_mode"] != "none":
            missing = missing_compiler(self.device)
            if missing:
                raise EngineUnavailable(f"{missing} (or set engine_settings.fused.compile_mode: none)")
            # static shapes compile once per (batch, seq): run() allows every shape it sees, so that dynamic
            # padding and the whole-split pass never fall back to uncompiled code
            self.forward = torch.compile(self.model, mode=options["compile_mode"], fullgraph=True, dynamic=False)
        self.use_graphs = options["cuda_graphs"] and self.device == "cuda"
        self.graphs: dict[tuple[int, int], GraphedShape] = {}
        self.graph_pool = torch.cuda.graph_pool_handle() if self.use_graphs else None
        self.options = options
        self.notes.append(f"GELU: {'cuBLASLt epilogue (tanh approximation on CUDA)' if gelu_epilogue else 'exact'}")
        if options["cuda_graphs"] and not self.use_graphs:
            self.notes.append("CUDA graphs exist only on CUDA: on CPU the forward runs without them")

    def padded_length(self, seq: int) -> int:
        """The sequence length a batch of length `seq` runs at: up to a multiple of seq_multiple, at most the
        model's positions."""
        multiple = self.seq_multiple
        return max(seq, min(-(-seq // multiple) * multiple, self.max_positions))

    @torch.inference_mode()
    def run(self, input_ids, attention_mask):
        """Logits [batch, num_labels] (the graph's output buffer on CUDA: valid until the next call)."""
        seq = input_ids.shape[1]
        padded = self.padded_length(seq)
        shape = (input_ids.shape[0], padded)
        if not self.use_graphs:
            if padded != seq:  # padded keys are masked out, so the logits do not change
                input_ids = F.pad(input_ids, (0, padded - seq))
                attention_mask = F.pad(attention_mask, (0, padded - seq))
            self.allow_shape(shape)
            return self.forward(input_ids, attention_mask)
        graphed = self.graphs.get(shape) or self.capture(shape, input_ids.dtype, attention_mask.dtype)
        graphed.input_ids[:, :seq].copy_(input_ids)
        graphed.attention_mask[:, :seq].copy_(attention_mask)
        if padded != seq:
            graphed.attention_mask[:, seq:].zero_()
        graphed.graph.replay()
        return graphed.logits

    def allow_shape(self, shape: tuple[int, int]) -> None:
        """A new shape compiles anew: keep Dynamo's recompile limit above the shapes seen."""
        if shape not in self.shapes:
            self.shapes.add(shape)
            allow_compiled_shapes(len(self.shapes))

    def capture(self, shape: tuple[int, int], ids_dtype: torch.dtype, mask_dtype: torch.dtype) -> GraphedShape:
        """Warm up and capture one CUDA graph for a (batch, padded length) shape; its static inputs and output."""
        self.allow_shape(shape)
        # inputs live outside the graph's pool, so no replay of another shape can overwrite them
        input_ids = torch.zeros(shape, dtype=ids_dtype, device=self.device)
        attention_mask = torch.ones(shape, dtype=mask_dtype, device=self.device)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_CALLS):
                self.forward(input_ids, attention_mask)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # one pool for all shapes: a replay may reuse another shape's intermediates and output, which
        # the interface allows (a result is valid until the next call)
        with torch.cuda.graph(graph, pool=self.graph_pool):
            logits = self.forward(input_ids, attention_mask)
        self.graphs[shape] = GraphedShape(graph, input_ids, attention_mask, logits)
        return self.graphs[shape]

    def describe(self) -> dict:
        """Settings, notes and the shapes captured as CUDA graphs."""
        return {"settings": self.options, "notes": self.notes,
                "cuda_graph_shapes": [list(shape) for shape in self.graphs]}
