"""The steps as command-line-free Python calls on a tiny model: dataset, model, tokens, export, cells."""
import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from workflow_scripts import accuracy, benchmark, dataset, export, model, reference, tokens

from conftest import DATASET, FAST_MEASUREMENT, REPO, TINY

MEASUREMENT = FAST_MEASUREMENT
FP32 = {"max_abs_diff": 1e-3, "min_agreement": 0.99}


@pytest.fixture(scope="module")
def prepared(tiny_model):
    return tiny_model


def console_lines(caplog) -> list[str]:
    """What a step showed on the console (the `progress` logger), of all it logged."""
    return [record.getMessage() for record in caplog.records if record.name == "progress"]


def test_offline_auto_falls_back_to_the_bundled_sample(prepared):
    root, info = prepared
    assert info["origin"] == "sample" and info["rows"] == 40
    assert info["hub_error"]  # the hub was tried first, and why it failed is kept
    rows = dataset.read_rows(root / "rows.jsonl")
    assert {row["label"] for row in rows} == {0, 1}


def test_without_the_datasets_package_auto_falls_back_to_the_sample_saying_why(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as on a GPU machine that has no `datasets`
    caplog.set_level("INFO", logger="progress")
    info = dataset.prepare({**DATASET, "source": "auto"}, tmp_path / "rows.jsonl", tmp_path / "info.json")
    assert info["origin"] == "sample" and "datasets package is not installed" in info["hub_error"]
    # the console's one line says which source was used, and why (offline here: conftest)
    assert console_lines(caplog) == [
        f"dataset: the bundled SST-2-format sample ({info['rows']} sentences), not glue/sst2 validation: the "
        f"Hugging Face hub is not reachable and the local cache could not give it ({info['hub_error']})"]


def test_offline_a_dataset_in_the_local_cache_is_used_and_named(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(dataset, "load_from_hub", lambda *_: [{"sentence": "fine", "label": 1}] * 3)
    caplog.set_level("INFO", logger="progress")
    info = dataset.prepare({**DATASET, "source": "auto"}, tmp_path / "rows.jsonl", tmp_path / "info.json")
    assert info["origin"] == "hub" and info["rows"] == 3
    assert console_lines(caplog) == ["dataset: glue/sst2 validation from the local cache (3 rows; the Hugging Face "
                                     "hub is not reachable)"]


def test_offline_auto_weights_say_that_random_weights_replace_the_model(caplog):
    """The model job's console line when the local cache lacks the checkpoint (pretrained_model gives up)."""
    caplog.set_level("INFO", logger="progress")
    settings = {"id": "bert-base-uncased", "weights": "auto", "num_labels": 2}
    assert model.pretrained_model(settings, False, hub_ok=False, warnings=[]) is None
    assert console_lines(caplog) == ["model: bert-base-uncased: the Hugging Face hub is not reachable and the local "
                                     "cache could not give it; the same architecture with random weights instead "
                                     "(latencies valid, accuracy meaningless)"]


def test_hub_only_source_fails_fast_saying_what_to_do(tmp_path):
    with pytest.raises(SystemExit, match="dataset.source: auto"):
        dataset.prepare({**DATASET, "source": "hub"}, tmp_path / "rows.jsonl", tmp_path / "info.json")
    assert not list(tmp_path.iterdir())


def test_pretrained_weights_offline_fail_with_advice(tmp_path, prepared):
    root, _ = prepared
    with pytest.raises(SystemExit, match="weights: random"):
        model.prepare({"id": "bert-base-uncased", "weights": "pretrained", "num_labels": 2, "config_overrides": {}},
                      root / "rows.jsonl", tmp_path / "model")


def test_offline_a_model_id_gets_its_own_geometry_from_a_shipped_config_and_says_so(tmp_path, prepared):
    """bert-large-uncased without the hub: its 1024-wide, 16-head layers (once it silently got bert-base's)."""
    root, _ = prepared
    info = model.prepare({"id": "bert-large-uncased", "weights": "random", "num_labels": 2,
                          "config_overrides": {"num_hidden_layers": 1, "vocab_size": 2000}},
                         root / "rows.jsonl", tmp_path / "model")
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert (saved["hidden_size"], saved["num_attention_heads"], saved["intermediate_size"]) == (1024, 16, 4096)
    assert info["hidden_size"] == 1024 and "shipped with inferbench" in info["config_source"]
    assert any("bert-large-uncased" in w and "shipped with inferbench" in w for w in info["warnings"])


def test_offline_a_model_id_without_any_config_is_refused_by_name(tmp_path, prepared):
    root, _ = prepared
    with pytest.raises(SystemExit, match="(?s)'my-org/sst2-classifier'.*ships none for it"):
        model.prepare({"id": "my-org/sst2-classifier", "weights": "random", "num_labels": 2, "config_overrides": {}},
                      root / "rows.jsonl", tmp_path / "model")


def test_tokenizing_beyond_the_models_positions_is_refused_naming_both_numbers(prepared, tmp_path):
    """The check for a model whose config planning could not see (fetched from the hub by the model job)."""
    root, _ = prepared
    with pytest.raises(SystemExit, match="sweep.seq_lens has 1024, but bert-base-uncased has "
                                         "max_position_embeddings 512"):
        tokens.tokenize(root / "model", root / "rows.jsonl", 1024, tmp_path / "tokens.pt")
    assert not (tmp_path / "tokens.pt").exists()


def test_random_model_records_its_origin_and_a_usable_tokenizer(prepared):
    root, _ = prepared
    info = model.load_info(root / "model")
    assert info["weights"] == "random" and info["num_hidden_layers"] == 2 and info["hidden_size"] == 64
    toks = tokens.load_tokens(root / "tokens.pt")
    assert toks["input_ids"].shape == (40, 32)
    unk_share = (toks["input_ids"] == 100).float().mean()  # [UNK] in a BERT vocabulary
    assert unk_share < 0.01


@pytest.mark.parametrize("model_id", ["distilbert-base-uncased", "roberta-base"])
def test_other_encoders_build_and_run(tmp_path, prepared, model_id):
    root, _ = prepared
    overrides = ({"n_layers": 2, "dim": 64, "n_heads": 2, "hidden_dim": 128, "vocab_size": 2000}
                 if model_id.startswith("distil") else TINY)
    info = model.prepare({"id": model_id, "weights": "random", "num_labels": 2, "config_overrides": overrides},
                         root / "rows.jsonl", tmp_path / "model")
    assert info["model_type"] == model_id.split("-")[0]
    tokens.tokenize(tmp_path / "model", root / "rows.jsonl", 32, tmp_path / "tokens.pt")
    reference.compute_reference(tmp_path / "model", tmp_path / "tokens.pt", "cpu", 16, tmp_path / "ref.pt")
    result = benchmark.run_cell(
        {"engine": "eager", "precision": "fp32", "batch_size": 2, "seq_len": 32, "padding": "max_length",
         "device": "cpu"}, tmp_path / "model", tmp_path / "tokens.pt", tmp_path / "ref.pt", {}, {}, MEASUREMENT,
        FP32, tmp_path / "cell.json")
    assert result["status"] == "ok", result["reason"]


def test_dynamic_padding_trims_batches_and_matches_the_reference(prepared, tmp_path):
    root, _ = prepared
    result = benchmark.run_cell(
        {"engine": "eager", "precision": "fp32", "batch_size": 4, "seq_len": 32, "padding": "dynamic",
         "device": "cpu"}, root / "model", root / "tokens.pt", root / "reference.pt", {}, {}, MEASUREMENT, FP32,
        tmp_path / "cell.json")
    assert result["status"] == "ok", result["reason"]
    assert result["tokens_per_batch"] < 4 * 32
    assert result["correctness"]["max_abs_diff"] < 1e-4


def test_bf16_cell_runs_on_cpu_within_its_tolerance(prepared, tmp_path):
    root, _ = prepared
    result = benchmark.run_cell(
        {"engine": "eager", "precision": "bf16", "batch_size": 4, "seq_len": 32, "padding": "max_length",
         "device": "cpu"}, root / "model", root / "tokens.pt", root / "reference.pt", {}, {}, MEASUREMENT,
        {"max_abs_diff": 0.1, "min_agreement": 0.5}, tmp_path / "cell.json")
    assert result["status"] == "ok", result["reason"]
    assert 0 < result["correctness"]["max_abs_diff"] < 0.1


def test_torchscript_export_is_verified_and_a_corrupted_file_is_refused(prepared, tmp_path, recwarn):
    root, _ = prepared
    module = tmp_path / "seq32.pt"
    info = export.export_torchscript(root / "model", root / "tokens.pt", "cpu", "fp32", FP32, module)
    # transformers' harmless tracing warnings (TracerWarning, FutureWarning) are silenced
    assert not [str(w.message) for w in recwarn if "transformers" in w.filename]
    assert info["status"] == "ok" and len(info["verification"]) == 4
    assert all(check["within_tolerance"] for check in info["verification"])
    cell = {"engine": "torchscript", "precision": "fp32", "batch_size": 3, "seq_len": 32, "padding": "dynamic",
            "device": "cpu"}
    good = benchmark.run_cell(cell, root / "model", root / "tokens.pt", root / "reference.pt",
                              {"torchscript": module}, {}, MEASUREMENT, FP32, tmp_path / "good.json")
    assert good["status"] == "ok", good["reason"]
    module.write_bytes(module.read_bytes()[: module.stat().st_size // 2])  # truncate
    bad = benchmark.run_cell(cell, root / "model", root / "tokens.pt", root / "reference.pt",
                             {"torchscript": module}, {}, MEASUREMENT, FP32, tmp_path / "bad.json")
    assert bad["status"] == "failed" and "corrupted" in bad["reason"]


def test_a_perturbed_engine_is_marked_mismatch(prepared, tmp_path, monkeypatch):
    root, _ = prepared
    from workflow_scripts.engines.eager import EagerEngine

    original = EagerEngine.run
    monkeypatch.setattr(EagerEngine, "run", lambda self, ids, mask: original(self, ids, mask) + 0.5)
    cell = {"engine": "eager", "precision": "fp32", "batch_size": 2, "seq_len": 32, "padding": "max_length",
            "device": "cpu"}
    result = benchmark.run_cell(cell, root / "model", root / "tokens.pt", root / "reference.pt", {}, {},
                                MEASUREMENT, FP32, tmp_path / "cell.json")
    assert result["status"] == "mismatch" and "differ from fp32 eager" in result["reason"]
    split = accuracy.evaluate(cell, root / "model", root / "tokens.pt", root / "reference.pt", {}, {}, FP32,
                              tmp_path / "acc.json")
    assert split["status"] == "mismatch"
    assert json.loads((tmp_path / "acc.json").read_text())["status"] == "mismatch"


def test_fp16_on_cpu_is_skipped_with_a_reason(prepared, tmp_path):
    root, _ = prepared
    cell = {"engine": "compile-default", "precision": "fp16", "batch_size": 1, "seq_len": 32,
            "padding": "max_length", "device": "cpu"}
    result = benchmark.run_cell(cell, root / "model", root / "tokens.pt", root / "reference.pt", {}, {},
                                MEASUREMENT, FP32, tmp_path / "cell.json")
    assert result["status"] == "skipped" and "fp16" in result["reason"]


def test_out_of_memory_is_recorded_as_oom(prepared, tmp_path, monkeypatch):
    root, _ = prepared
    from workflow_scripts.engines.eager import EagerEngine

    def exhausted(self, ids, mask):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(EagerEngine, "run", exhausted)
    cell = {"engine": "eager", "precision": "fp32", "batch_size": 2, "seq_len": 32, "padding": "max_length",
            "device": "cpu"}
    result = benchmark.run_cell(cell, root / "model", root / "tokens.pt", root / "reference.pt", {}, {},
                                MEASUREMENT, FP32, tmp_path / "cell.json")
    assert result["status"] == "oom"


def test_a_compiled_engine_compiles_every_input_shape_past_dynamos_default_recompile_limit(tmp_path, monkeypatch):
    """Dynamic padding with 10 batch lengths and `fullgraph: false` once ran shapes 9 and 10 uncompiled
    ("hit config.recompile_limit (8)") in a cell recorded as compiled. A stand-in model and Dynamo's eager
    backend (counting what it compiles) keep the test to Dynamo's bookkeeping."""
    import collections

    import torch
    from torch._dynamo.testing import CompileCounter

    from workflow_scripts.engines import compiled, create

    output = collections.namedtuple("Output", "logits")

    class StandInModel(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return output((input_ids * attention_mask).float().sum(dim=1, keepdim=True))

    counter, real_compile = CompileCounter(), torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, mode, fullgraph, dynamic: real_compile(
        model, backend=counter, fullgraph=fullgraph, dynamic=dynamic))
    monkeypatch.setattr(compiled, "load_hf_model", lambda *args, **kwargs: StandInModel())
    for key, value in (("recompile_limit", 8), ("accumulated_recompile_limit", 256),
                       ("fail_on_recompile_limit_hit", False)):  # torch's defaults; restored afterwards
        monkeypatch.setattr(torch._dynamo.config, key, value)
    engine = create("compile-default", model_dir=tmp_path, device="cpu", precision="fp32",
                    settings={"fullgraph": False, "dynamic": False})
    engine.load()
    lengths = range(8, 28, 2)
    for seq_len in lengths:
        ids = torch.ones((2, seq_len), dtype=torch.int64)
        assert engine.run(ids, torch.ones_like(ids)).tolist() == [[seq_len], [seq_len]]
    assert counter.frame_count == len(lengths) == engine.describe()["input_shapes"]


@pytest.mark.parametrize("failure,expected", [
    ("raise SystemExit('model.id x: refused, with advice')", "model.id x: refused, with advice"),
    ("import torch; torch.zeros(2, 3) @ torch.zeros(4, 5)", "RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
])
def test_a_failing_step_leaves_its_error_in_its_own_log(tmp_path, failure, expected):
    """Snakemake shows a job's stderr only on its console; the job's log file must hold the error too."""
    log = tmp_path / "job.log"
    code = f"from workflow_scripts.step_io import setup_logging\nsetup_logging({str(log)!r})\n{failure}\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode != 0
    assert expected in log.read_text()
    assert expected in proc.stderr  # and still on the console


def test_a_pair_of_an_engine_against_itself_gives_a_ratio_near_one(prepared, tmp_path, caplog):
    """The ratio, and the job's progress lines: each engine's load and first call, then its warm-up, before
    the rounds (on a CPU both took minutes, with nothing on the console)."""
    from workflow_scripts import pair, pair_table, results

    root, _ = prepared
    caplog.set_level("INFO", logger="progress")
    cell = {"engine": "eager", "precision": "fp32", "batch_size": 2, "seq_len": 32, "padding": "max_length",
            "device": "cpu"}
    pairing = {"rounds": 12, "repeats": 3, "max_ci_width": 0.5, "seed": 0}
    measurement = {**MEASUREMENT, "window_seconds": 0.02, "min_window_iters": 5}
    out = tmp_path / "pair.json"
    result = pair.run_pair(cell, {"engine": "eager", "precision": "fp32"}, root / "model", root / "tokens.pt", {},
                           {}, measurement, pairing, out)
    assert result["status"] == "ok", result["reason"]
    low, high = result["pair"]["speedup_ci95"]
    assert low <= 1.0 <= high and 0.8 < result["pair"]["speedup"] < 1.25, result["pair"]["speedup_ci95"]
    assert len(result["pair"]["ratios"]) == 3 and len(result["pair"]["ratios"][0]) == 12
    results.validate_cell_result(json.loads(out.read_text()))
    row = pair_table.pair_table([str(out)]).iloc[0]
    assert row.speedup == result["pair"]["speedup"] and row.rounds == 36 and row.baseline_engine == "eager"
    assert "gpu_uuid" in row.index and pd.isna(row.gpu_uuid)  # which card, as in cells.csv (none on CPU)
    name = "pair eager fp32 bs2 seq32 max_length vs eager fp32: "
    expected = [r"baseline eager fp32 loaded in \d+\.\d s, first call \d+\.\d s",
                r"engine eager fp32 loaded in \d+\.\d s, first call \d+\.\d s",
                r"baseline eager fp32 (warm in|warm-up not steady after) \d+\.\d s \(\d+ windows?\)",
                r"engine eager fp32 (warm in|warm-up not steady after) \d+\.\d s \(\d+ windows?\)",
                r"timing 3 repeats x 12 rounds of one window each"]
    lines = [line.removeprefix(name) for line in caplog.messages if line.startswith(name)]
    assert len(lines) >= len(expected) + 1, caplog.messages
    for line, pattern in zip(lines, expected):
        assert re.match(pattern, line), (pattern, line)
    assert lines[-1].startswith("speedup ") and lines[-1].endswith(" s)")  # the last: the speedup


def test_a_pair_whose_engine_cannot_run_here_is_skipped_with_the_reason(prepared, tmp_path):
    from workflow_scripts import pair

    root, _ = prepared
    cell = {"engine": "eager", "precision": "fp16", "batch_size": 2, "seq_len": 32, "padding": "max_length",
            "device": "cpu"}
    result = pair.run_pair(cell, {"engine": "eager", "precision": "fp32"}, root / "model", root / "tokens.pt", {},
                           {}, MEASUREMENT, {"rounds": 2, "repeats": 1, "max_ci_width": 0.5, "seed": 0},
                           tmp_path / "pair.json")
    assert result["status"] == "skipped" and "fp16" in result["reason"]
    assert (tmp_path / "pair.json").is_file()
