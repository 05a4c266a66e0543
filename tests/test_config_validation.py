"""A bad config fails before any job runs, with a message that names the key."""
import pytest

from conftest import overlay, snakemake

BAD_CONFIGS = [
    ("unknown engine", {"sweep": {"engines": ["eager", "warp-drive"]}}, "sweep.engines[1]"),
    ("unknown precision", {"sweep": {"precisions": ["fp8"]}}, "sweep.precisions[0]"),
    ("batch size 0", {"sweep": {"batch_sizes": [0]}}, "sweep.batch_sizes[0]"),
    ("negative batch size", {"sweep": {"batch_sizes": [4, -1]}}, "sweep.batch_sizes[1]"),
    ("empty sweep", {"sweep": {"batch_sizes": []}}, "sweep.batch_sizes"),
    ("negative iterations", {"measurement": {"min_iters": -5}}, "measurement.min_iters"),
    ("typo in a key", {"measurement": {"warmup_iter": 3}}, "'warmup_iter' was unexpected"),
    ("typo at top level", {"sweeps": {}}, "'sweeps' was unexpected"),
    ("wrong type", {"sweep": {"seq_lens": ["long"]}}, "sweep.seq_lens[0]"),
    ("unknown device", {"device": "tpu"}, "device"),
    ("piece without tables", {"merge_pieces": ["pieces/a/results"]}, "merge_pieces[0]: pieces/a/results has no"),
    ("baseline not in sweep", {"report": {"baseline": {"engine": "torchscript", "precision": "fp32"}},
                               "sweep": {"engines": ["eager"]}}, "report.baseline.engine"),
]


@pytest.mark.parametrize("name,values,expected", BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, name, values, expected):
    proc = snakemake(tmp_path, overlay(tmp_path, "bad", values), args=["-n"], check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Invalid config" in output
    assert expected in output
    assert "Job stats" not in output
    assert not (tmp_path / "results").exists()


def test_unknown_engine_message_lists_the_allowed_values(tmp_path):
    proc = snakemake(tmp_path, overlay(tmp_path, "bad", {"sweep": {"engines": ["warp-drive"]}}), args=["-n"],
                     check=False)
    assert "compile-reduce-overhead" in proc.stderr + proc.stdout


def test_good_config_plans_every_cell(tmp_path):
    proc = snakemake(tmp_path, args=["-n"])
    assert "Job stats" in proc.stdout


def test_the_baseline_may_come_from_a_merged_piece(tmp_path):
    """A piece that times only the fast paths can take its baseline from an earlier piece that timed it."""
    piece = tmp_path / "baseline_piece"
    (piece / "aggregate").mkdir(parents=True)
    (piece / "aggregate" / "cells.csv").write_text("engine,precision,batch_size\ntorchscript,fp32,1\n")
    for name in ("serving.csv", "profiles.csv", "profile_tops.csv"):
        (piece / "aggregate" / name).write_text("engine\n")
    values = {"sweep": {"engines": ["eager"]}, "profiling": {"engines": ["eager"]},
              "report": {"baseline": {"engine": "torchscript", "precision": "fp32"}}}
    merged = overlay(tmp_path, "merged", {**values, "merge_pieces": [str(piece)]})
    assert "Job stats" in snakemake(tmp_path, merged, args=["-n"]).stdout
    # a piece without the baseline's cells does not count
    (piece / "aggregate" / "cells.csv").write_text("engine,precision,batch_size\neager,fp32,1\n")
    proc = snakemake(tmp_path, merged, args=["-n"], check=False)
    assert proc.returncode != 0 and "nor in a merged piece" in proc.stderr + proc.stdout
