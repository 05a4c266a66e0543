"""Roofline arithmetic (FLOPs from the config, achieved rate, floors) and calibration without a GPU."""
import json
import math

import pandas as pd
import pytest

from workflow_scripts import calibrate, roofline
from workflow_scripts.report import roofline as roofline_section
from workflow_scripts.results import read_json

BERT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072, "num_attention_heads": 12,
             "vocab_size": 30522, "num_labels": 2, "num_parameters": 109_483_778}
PEAKS = {"status": "ok", "reason": None, "gpu_name": "test GPU", "torch": "x",
         "matmul_tflops": {"bf16": 800.0, "fp16": 800.0, "tf32": 400.0, "fp32": 50.0},
         "matmul": {"bf16": {"m": 8192}}, "copy_gb_per_s": 3000.0, "copy": {"buffer_bytes": 2 * 2**30}}


def test_bert_base_at_seq_128_is_about_22_3_gflop():
    flops = roofline.model_flops_per_sequence(BERT_BASE, 128)
    assert flops == pytest.approx(22.3e9, rel=0.02)


def test_flops_scale_with_layers_and_distilbert_names_work():
    one = roofline.model_flops_per_sequence({**BERT_BASE, "num_hidden_layers": 1}, 128)
    six = roofline.model_flops_per_sequence({**BERT_BASE, "num_hidden_layers": 6}, 128)
    assert six / one == pytest.approx(6, rel=0.01)
    distil = {"dim": 768, "n_layers": 6, "hidden_dim": 3072, "n_heads": 12, "vocab_size": 30522}
    assert roofline.model_flops_per_sequence(distil, 128) == pytest.approx(six)


def cells() -> pd.DataFrame:
    return pd.DataFrame([
        {"engine": "eager", "precision": "bf16", "batch_size": 1, "seq_len": 128, "padding": "max_length",
         "p50_ms": 1.0, "status": "ok", "tokens_per_batch": 128.0},
        {"engine": "eager", "precision": "fp32", "batch_size": 256, "seq_len": 128, "padding": "max_length",
         "p50_ms": 200.0, "status": "ok", "tokens_per_batch": 256 * 128.0},
        {"engine": "eager", "precision": "fp16", "batch_size": 2, "seq_len": 128, "padding": "dynamic",
         "p50_ms": 0.5, "status": "ok", "tokens_per_batch": 64.0},
        {"engine": "fused", "precision": "bf16", "batch_size": 1, "seq_len": 128, "padding": "max_length",
         "p50_ms": math.nan, "status": "failed", "tokens_per_batch": math.nan},
    ])


def test_roofline_columns_from_known_peaks():
    out = roofline.roofline_columns(cells(), PEAKS, BERT_BASE)
    per_seq = roofline.model_flops_per_sequence(BERT_BASE, 128)
    assert out.loc[0, "achieved_tflops"] == pytest.approx(per_seq / 1e-3 / 1e12)
    assert out.loc[0, "pct_of_matmul_peak"] == pytest.approx(per_seq / 1e-3 / 1e12 / 800)
    assert out.loc[1, "pct_of_matmul_peak"] == pytest.approx(per_seq * 256 / 0.2 / 1e12 / 50)
    # dynamic padding: the FLOPs of the batch's average padded length (64 tokens / 2 rows)
    assert out.loc[2, "achieved_tflops"] == pytest.approx(
        2 * roofline.model_flops_per_sequence(BERT_BASE, 32) / 0.5e-3 / 1e12)
    streamed = 109_483_778 - 30522 * 768  # the word-embedding table is gathered, not streamed
    assert out.loc[0, "batch1_floor_ms"] == pytest.approx(streamed * 2 / 3000e9 * 1e3)
    assert out.loc[1, "batch1_floor_ms"] == pytest.approx(streamed * 4 / 3000e9 * 1e3)
    assert out.loc[0, "roofline_floor_ms"] == out.loc[0, "batch1_floor_ms"]  # batch 1: memory-bound
    assert out.loc[1, "roofline_floor_ms"] == pytest.approx(per_seq * 256 / 50e12 * 1e3)  # compute-bound
    assert math.isnan(out.loc[3, "achieved_tflops"])


def test_roofline_blocks_show_peaks_and_ok_cells_only():
    blocks = roofline_section.roofline_blocks(cells(), PEAKS, BERT_BASE)
    assert blocks[0] == ("h2", "Roofline")
    tables = [content for kind, content in blocks if kind == "table"]
    assert "800.0 TFLOP/s" in tables[0]["value"].tolist()
    assert "the 86,042,882 parameters" in blocks[1][1] and "22.3 GFLOP at seq 128" in blocks[1][1]
    assert len(tables[1]) == 3 and set(tables[1]["engine"]) == {"eager"}


def test_skipped_calibration_is_one_paragraph_saying_why():
    blocks = roofline_section.roofline_blocks(cells(), {"status": "skipped", "reason": "no CUDA GPU"}, BERT_BASE)
    assert blocks == [("h2", "Roofline"), ("p", blocks[1][1])] and "skipped: no CUDA GPU" in blocks[1][1]
    out = roofline.roofline_columns(cells(), {"status": "skipped"}, BERT_BASE)
    assert out["achieved_tflops"].notna().sum() == 3 and out["pct_of_matmul_peak"].isna().all()


def test_model_info_completed_from_the_saved_config(tiny_model):
    root, _ = tiny_model
    info = roofline.load_model_info(root / "model")
    assert info["intermediate_size"] == 128 and info["num_parameters"] > 0
    per_layer = 2 * 32 * 64 * 192 + 2 * 2 * 32 * 32 * 64 + 2 * 32 * 64 * 64 + 4 * 32 * 64 * 128  # 2 layers, seq 32
    assert roofline.model_flops_per_sequence(info, 32) == pytest.approx(2 * per_layer + 2 * 64 * 64 + 2 * 64 * 2)


@pytest.mark.skipif(calibrate.torch.cuda.is_available(), reason="checks the behaviour without a GPU")
def test_calibration_without_a_gpu_is_skipped(tmp_path):
    calibrate.main(["--out", str(tmp_path / "peaks.json")])
    peaks = read_json(tmp_path / "peaks.json")
    # the command line resolves `device: auto` as a run does (cpu here), so it says what a run's job says
    assert peaks["status"] == "skipped" and peaks["reason"] == "no CUDA GPU (config device: cpu)"
    assert json.loads((tmp_path / "peaks.json").read_text())["matmul_tflops"] is None
