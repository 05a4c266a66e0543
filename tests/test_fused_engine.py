"""The fused engine computes what Hugging Face's BERT computes: logits against eager on the tiny model (CPU)."""
import json
import shutil

import pytest
import torch

from conftest import FAST_MEASUREMENT
from workflow_scripts import benchmark
from workflow_scripts.engines import create
from workflow_scripts.engines.base import EngineUnavailable
from workflow_scripts.tokens import batch_rows, load_tokens, make_batch


@pytest.fixture(scope="module")
def eager_and_tokens(tiny_model):
    root, _ = tiny_model
    eager = create("eager", model_dir=root / "model", device="cpu", precision="fp32")
    eager.load()
    return root, eager, load_tokens(root / "tokens.pt")


def fused_engine(root, **settings):
    engine = create("fused", model_dir=root / "model", device="cpu", precision="fp32", settings=settings)
    engine.load()
    return engine


def assert_matches_eager(engine, eager, tokens, batch_size, padding):
    for rows in batch_rows(tokens["input_ids"].shape[0], batch_size, max_batches=3):
        batch = make_batch(tokens, rows, padding, "cpu")
        expected = eager.run(batch["input_ids"], batch["attention_mask"])
        actual = engine.run(batch["input_ids"], batch["attention_mask"])
        assert actual.shape == expected.shape
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("padding", ["max_length", "dynamic"])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_fused_ops_match_eager_fp32(eager_and_tokens, batch_size, padding):
    root, eager, tokens = eager_and_tokens
    engine = fused_engine(root, compile_mode="none")
    assert_matches_eager(engine, eager, tokens, batch_size, padding)
    assert "GELU: exact" in engine.notes  # fp32 never takes the tanh-approximated epilogue


def test_dynamic_lengths_pad_up_to_the_multiple_within_the_position_table(eager_and_tokens):
    root, _, _ = eager_and_tokens
    engine = fused_engine(root, compile_mode="none", seq_multiple=16)
    assert [engine.padded_length(n) for n in (16, 23, 500, 511, 512)] == [16, 32, 512, 512, 512]


def test_a_benchmark_cell_with_the_fused_engine_is_ok(tiny_model, tmp_path):
    root, _ = tiny_model
    cell = {"engine": "fused", "precision": "fp32", "batch_size": 4, "seq_len": 32, "padding": "dynamic",
            "device": "cpu"}
    measurement = {**FAST_MEASUREMENT, "max_distinct_batches": 2}
    result = benchmark.run_cell(cell, root / "model", root / "tokens.pt", root / "reference.pt", {},
                                {"compile_mode": "none"}, measurement, {"max_abs_diff": 1e-3, "min_agreement": 0.99},
                                tmp_path / "cell.json")
    assert result["status"] == "ok", result["reason"]


def test_compiled_fused_matches_eager_fp32(eager_and_tokens):
    """Inductor on CPU, one shape per padding (dynamic lengths are padded up to seq_multiple)."""
    root, eager, tokens = eager_and_tokens
    engine = fused_engine(root, compile_mode="default", seq_multiple=32)
    for padding in ("max_length", "dynamic"):
        assert_matches_eager(engine, eager, tokens, 4, padding)


def test_without_the_gelu_epilogue_the_logits_are_the_same(eager_and_tokens):
    root, eager, tokens = eager_and_tokens
    engine = create("fused", model_dir=root / "model", device="cpu", precision="bf16",
                    settings={"compile_mode": "none", "gelu_epilogue": False})
    engine.load()
    batch = make_batch(tokens, torch.arange(4), "max_length", "cpu")
    logits = engine.run(batch["input_ids"], batch["attention_mask"]).float()
    expected = eager.run(batch["input_ids"], batch["attention_mask"])
    assert (logits - expected).abs().max() < 0.1  # bf16 tolerance of config.yaml


@pytest.mark.parametrize("field, value, words", [("hidden_act", "relu", "hidden_act is 'relu'"),
                                                  ("model_type", "roberta", "this model is 'roberta'")])
def test_unsupported_architecture_is_skipped_with_its_reason(tiny_model, tmp_path, field, value, words):
    root, _ = tiny_model
    model_dir = shutil.copytree(root / "model", tmp_path / "model")
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, field: value}))
    with pytest.raises(EngineUnavailable, match=words):
        create("fused", model_dir=model_dir, device="cpu", precision="fp32")
