"""Roofline: each cell's achieved TFLOP/s against the GPU's measured matmul peak, and the batch-1 floor.

FLOPs come from the model's config (2 per multiply-add of every matrix product; embeddings, LayerNorm,
softmax and activations are left out: they are a fraction of a percent). Peaks come from
results/calibration/peaks.json (workflow_scripts/calibrate.py), measured on the same GPU in the same run.
"""

import json
import math
from pathlib import Path

import pandas as pd

PRECISION_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
# fp32 cells run with TF32 off (as the reference does), so they are compared with the strict fp32 peak
PEAK_FOR_PRECISION = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}
# field names in BERT-like configs, then DistilBERT's
GEOMETRY_FIELDS = {
    "hidden_size": ("hidden_size", "dim"),
    "num_hidden_layers": ("num_hidden_layers", "n_layers"),
    "intermediate_size": ("intermediate_size", "hidden_dim"),
    "num_attention_heads": ("num_attention_heads", "n_heads"),
    "vocab_size": ("vocab_size",),
}


def load_model_info(model_dir: str | Path) -> dict:
    """The model step's inferbench_model.json, completed with the geometry from the saved config.json."""
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    info = json.loads((model_dir / "inferbench_model.json").read_text())
    return {**config, **{key: value for key, value in info.items() if value is not None}}


def geometry(model_info: dict) -> dict:
    """hidden size, layers, FFN size, heads, vocabulary and labels from a BERT-like or DistilBERT config; KeyError
    naming a missing field."""
    found = {}
    for key, names in GEOMETRY_FIELDS.items():
        value = next((model_info[name] for name in names if model_info.get(name) is not None), None)
        if value is None and key != "vocab_size":
            raise KeyError(f"model info has no {key} (looked for {', '.join(names)})")
        found[key] = value
    found["num_labels"] = model_info.get("num_labels") or len(model_info.get("id2label") or {}) or 2
    return found


def model_flops_per_sequence(model_info: dict, seq_len: float) -> float:
    """Forward FLOPs of one sequence: per layer QKV, QKᵀ, attention·V, output projection, FFN up and down;
    then the pooler (or DistilBERT's pre-classifier) and the classifier on the first token."""
    g = geometry(model_info)
    h, ffn, s = g["hidden_size"], g["intermediate_size"], seq_len
    per_layer = (2 * s * h * 3 * h  # q, k, v projections
                 + 2 * s * s * h    # scores QKᵀ (all heads together)
                 + 2 * s * s * h    # attention-weighted values
                 + 2 * s * h * h    # output projection
                 + 2 * 2 * s * h * ffn)  # FFN up and down
    head = 2 * h * h + 2 * h * g["num_labels"]
    return g["num_hidden_layers"] * per_layer + head


def weights_bytes(num_parameters: int, precision: str) -> int:
    """Bytes of num_parameters weights in `precision`."""
    return num_parameters * PRECISION_BYTES[precision]


def streamed_parameters(model_info: dict) -> int:
    """Parameters every forward reads in full: all but the word-embedding table, of which a batch
    gathers only its own rows (0.1% of the table for a batch of 32 tokens of bert-base)."""
    g = geometry(model_info)
    table = g["vocab_size"] * g["hidden_size"] if g["vocab_size"] else 0
    return model_info["num_parameters"] - table


def peak_ok(peaks: dict | None) -> bool:
    """Whether the calibration measured peaks (status ok)."""
    return bool(peaks) and peaks.get("status") == "ok"


def roofline_columns(table: pd.DataFrame, peaks: dict | None, model_info: dict) -> pd.DataFrame:
    """The cells table with achieved_tflops, peak_tflops, pct_of_matmul_peak, batch1_floor_ms (weights
    bytes / bandwidth) and roofline_floor_ms (the larger of that and FLOPs / matmul peak) added.

    Dynamic-padding cells count the FLOPs of their average padded length (tokens_per_batch / batch).
    """
    out = table.copy()
    seq = out["seq_len"].astype(float)
    if "tokens_per_batch" in out and "padding" in out:
        dynamic = (out["padding"] == "dynamic") & out["tokens_per_batch"].notna()
        seq = seq.where(~dynamic, out["tokens_per_batch"] / out["batch_size"])
    flops = [model_flops_per_sequence(model_info, s) * b for s, b in zip(seq, out["batch_size"])]
    out["achieved_tflops"] = pd.Series(flops, index=out.index) / (out["p50_ms"] * 1e-3) / 1e12
    if peak_ok(peaks):
        rates = peaks["matmul_tflops"]
        out["peak_tflops"] = [rates.get(PEAK_FOR_PRECISION.get(p), math.nan) for p in out["precision"]]
        bandwidth = peaks["copy_gb_per_s"] * 1e9
        streamed = streamed_parameters(model_info)
        out["batch1_floor_ms"] = [weights_bytes(streamed, p) / bandwidth * 1e3 for p in out["precision"]]
    else:
        out["peak_tflops"] = math.nan
        out["batch1_floor_ms"] = math.nan
    out["pct_of_matmul_peak"] = out["achieved_tflops"] / out["peak_tflops"]
    # the roofline bound of the cell: weights read once, or its FLOPs at the matmul peak, whichever is longer
    compute_floor_ms = pd.Series(flops, index=out.index) / (out["peak_tflops"] * 1e12) * 1e3
    out["roofline_floor_ms"] = pd.concat([out["batch1_floor_ms"], compute_floor_ms], axis=1).max(axis=1,
                                                                                                 skipna=False)
    return out
