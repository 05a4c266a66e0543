"""Adding an engine needs its module and one registry entry only: a toy engine defined in a temporary module
and registered for the test runs through the cell steps, aggregation and the report, and appears in every
report table where the in-process engines appear."""
import json
import textwrap

import pytest

from workflow_scripts import accuracy, aggregate, benchmark, engines, experiment
from workflow_scripts.results import write_csv
from workflow_scripts.engines import EngineSpec
from workflow_scripts.report import FIGURES, build, context

from conftest import FAST_MEASUREMENT

FP32 = {"max_abs_diff": 1e-3, "min_agreement": 0.99}
TOY_MODULE = '''
"""A toy engine: the Hugging Face model run as it is, under its own name."""
import torch

from workflow_scripts.engines.base import Engine, load_hf_model


class ToyEngine(Engine):
    """The saved classifier, unchanged."""

    def load(self) -> None:
        self.model = load_hf_model(self.model_dir, self.device, self.dtype)

    @torch.inference_mode()
    def run(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits
'''


def markdown_tables(text: str) -> list[str]:
    """The report's Markdown tables, each as its lines joined."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append("\n".join(current))
            current = []
    return tables


def test_a_toy_engine_registered_in_a_temporary_module_appears_in_every_report_table(tiny_model, tmp_path,
                                                                                       monkeypatch):
    root, _ = tiny_model
    (tmp_path / "toy_engine.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(engines.ENGINES, "toy", EngineSpec("toy_engine", "ToyEngine"))

    results = []
    for engine in ("eager", "toy"):
        cell = {"engine": engine, "precision": "fp32", "batch_size": 2, "seq_len": 32, "padding": "max_length",
                "device": "cpu"}
        bench = tmp_path / "bench" / f"{engine}.json"
        timed = benchmark.run_cell(cell, root / "model", root / "tokens.pt", root / "reference.pt", {}, {},
                                   FAST_MEASUREMENT, FP32, bench)
        assert timed["status"] == "ok", timed["reason"]
        acc = tmp_path / "accuracy" / f"{engine}.json"
        assert accuracy.evaluate({**cell, "batch_size": 8}, root / "model", root / "tokens.pt",
                                 root / "reference.pt", {}, {}, FP32, acc)["status"] == "ok"
        results += [str(bench), str(acc)]

    roles = engines.roles(experiment.load_config())
    assert roles["toy"] == {"served": False, "twin": None}
    out = tmp_path / "aggregate"
    out.mkdir()
    names = ("cells", "serving", "profiles", "profile_tops")
    for name, table in zip(names, aggregate.aggregate(results, roles)):
        write_csv(out / f"{name}.csv", table)
    (tmp_path / "peaks.json").write_text(json.dumps({"status": "skipped", "reason": "no GPU", "device": "cpu"}))
    report = tmp_path / "report"
    (report / "figures").mkdir(parents=True)
    settings = experiment.report_settings(experiment.load_config())
    ctx = context.load(*(str(out / f"{name}.csv") for name in names), str(tmp_path / "peaks.json"),
                       str(root / "info.json"), str(root / "model"), settings["baseline"], settings["targets"],
                       settings["budgets"], {name: str(report / "figures" / f"{name}.png") for name in FIGURES})
    build.build(ctx, str(report / "report.md"), str(report / "report.html"))

    tables = markdown_tables((report / "report.md").read_text())
    # the tables of cells (headline, all cells, correctness) list every engine; the Summary and the budget
    # table name only winners, which may be either engine
    cell_tables = [table for table in tables if table.startswith("| engine |")]
    assert len(cell_tables) == 3, tables
    for table in cell_tables:
        assert {row.split("|")[1].strip() for row in table.splitlines()[2:]} == {"eager", "toy"}, table
