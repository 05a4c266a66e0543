"""Comparison with an earlier run, on the committed H200 run's cells (read, never rerun)."""
from pathlib import Path

import pandas as pd
import pytest

from workflow_scripts import compare, strict_check
from workflow_scripts.report import comparison as comparison_section
from workflow_scripts.report.context import ReportContext

H200 = Path(__file__).parent.parent / "docs" / "results" / "h200"
CELLS = pd.read_csv(H200 / "aggregate" / "cells.csv")
TIMED = CELLS.status.isin(["ok", "mismatch"])


def slowed(table: pd.DataFrame, engine: str, precision: str, batch_size: int, by: float) -> pd.DataFrame:
    """The table with one cell's p50 and its interval multiplied by `by`."""
    table = table.copy()
    cell = (table.engine == engine) & (table.precision == precision) & (table.batch_size == batch_size)
    assert cell.sum() == 1
    for column in ("p50_ms", "p50_ci_low_ms", "p50_ci_high_ms"):
        table.loc[cell, column] *= by
    return table


def test_a_run_against_itself_shows_no_change_anywhere():
    result = compare.compare(CELLS, CELLS)
    assert len(result) == len(CELLS)
    assert set(result[TIMED.values].verdict) == {"no change detectable"}
    assert set(result[~TIMED.values].verdict) <= {"not timed"}
    assert (result[TIMED.values].ratio == 1).all()


def test_one_slowed_cell_is_flagged_alone():
    result = compare.compare(slowed(CELLS, "fused", "bf16", 64, 1.3), CELLS)
    flagged = result[result.verdict != "no change detectable"]
    flagged = flagged[flagged.verdict != "not timed"]
    assert flagged[["engine", "precision", "batch_size", "verdict"]].values.tolist() == [
        ["fused", "bf16", 64, "slower"]]
    assert flagged.ratio.iloc[0] == pytest.approx(1.3)
    assert 1 < flagged["ratio low"].iloc[0] <= 1.3 <= flagged["ratio high"].iloc[0]
    # the other way round it is faster, and only a slowdown beyond the threshold is a regression
    assert compare.compare(CELLS, slowed(CELLS, "fused", "bf16", 64, 1.3)).verdict.value_counts()["faster"] == 1
    assert len(compare.regressions(result, 0.05)) == 1
    assert len(compare.regressions(result, 0.5)) == 0


def test_cells_from_another_gpu_model_or_model_are_refused_with_the_reason():
    other_gpu = CELLS.assign(gpu_name="NVIDIA A100-SXM4-80GB")
    result = compare.compare(CELLS, other_gpu)
    assert set(result.verdict) == {"refused"}
    assert "machine: NVIDIA A100-SXM4-80GB (old) vs NVIDIA H200 (new)" in result.reason.iloc[0]
    assert result.ratio.isna().all()
    other_model = compare.compare(CELLS, CELLS.assign(model_id="distilbert-base-uncased"))
    assert set(other_model.verdict) == {"refused"} and "model id: distilbert-base-uncased" in other_model.reason.iloc[0]
    geometry = compare.compare(CELLS, CELLS.assign(tokens_per_batch=CELLS.tokens_per_batch.fillna(0) + 1))
    assert "input geometry" in geometry.reason.iloc[0]


def test_command_line_and_strict_fail_on_a_regression(tmp_path, capsys):
    for name, table in (("old", CELLS), ("new", slowed(CELLS, "fused", "bf16", 64, 1.3))):
        (tmp_path / name / "aggregate").mkdir(parents=True)
        table.to_csv(tmp_path / name / "aggregate" / "cells.csv", index=False)
    out = tmp_path / "comparison.csv"
    assert compare.main([str(tmp_path / "new"), str(tmp_path / "old"), "--out", str(out)]) == 1
    assert "regression: fused/bf16/bs64/seq128/max_length at 1.300×" in capsys.readouterr().err
    assert compare.main([str(tmp_path / "old"), str(tmp_path / "old")]) == 0
    with pytest.raises(SystemExit, match="holds no aggregate/cells.csv"):
        compare.main([str(tmp_path / "new"), str(tmp_path)])
    # a table without a column the comparison reads is named, not a KeyError
    (tmp_path / "older" / "aggregate").mkdir(parents=True)
    CELLS.drop(columns=["model_id"]).to_csv(tmp_path / "older" / "aggregate" / "cells.csv", index=False)
    with pytest.raises(SystemExit, match=r"older/aggregate/cells.csv lacks the column\(s\) model_id"):
        compare.main([str(tmp_path / "new"), str(tmp_path / "older")])
    # strict: the same regression fails the run; the table alone (no mismatch/failed in it) would pass
    trusted = tmp_path / "trusted.csv"
    CELLS[CELLS.status == "ok"].to_csv(trusted, index=False)
    assert strict_check.check(str(trusted), comparison_path=str(out), max_slowdown=0.05) == 1
    assert "slower than the earlier run by more than 5%" in capsys.readouterr().err
    assert strict_check.check(str(trusted), comparison_path=str(out), max_slowdown=0.5) == 0


def test_report_section_lists_slower_cells_first_and_is_absent_without_an_earlier_run():
    assert comparison_section.blocks(ReportContext(table=CELLS)) == []
    result = compare.compare(slowed(CELLS, "fused", "bf16", 64, 1.3), CELLS)
    blocks = comparison_section.blocks(ReportContext(table=CELLS, comparison=result))
    shown = blocks[-1][1]
    assert shown.iloc[0][["engine", "batch", "new/old", "verdict"]].tolist() == ["fused", 64, "1.300", "slower"]
    assert "1 slower" in blocks[1][1]


def test_cells_that_only_one_run_has_are_listed_not_dropped(tmp_path, capsys):
    """The comparison once kept only the cells of both runs: a cell added or removed since went unseen, in the
    command line's output and in the report."""
    added = CELLS[(CELLS.engine == "fused") & (CELLS.precision == "bf16") & (CELLS.batch_size == 64)]
    removed = CELLS[(CELLS.engine == "eager") & (CELLS.precision == "fp32") & (CELLS.batch_size == 1)]
    old, new = CELLS.drop(added.index), CELLS.drop(removed.index)
    result = compare.compare(new, old)
    assert len(result) == len(CELLS)  # every cell of either run once: the shared ones, then one only-in of each
    only = result[result.verdict.isin([compare.ONLY_NEW, compare.ONLY_OLD])]
    assert only[["engine", "precision", "batch_size", "verdict"]].values.tolist() == [
        ["fused", "bf16", 64, "only in the new run"], ["eager", "fp32", 1, "only in the old run"]]
    assert only["new p50 ms"].iloc[0] == added.p50_ms.iloc[0] and pd.isna(only["old p50 ms"].iloc[0])
    assert only["old p50 ms"].iloc[1] == removed.p50_ms.iloc[0] and only.ratio.isna().all()
    # the command line prints them, named, and they are no regression
    for name, table in (("old", old), ("new", new)):
        (tmp_path / name / "aggregate").mkdir(parents=True)
        table.to_csv(tmp_path / name / "aggregate" / "cells.csv", index=False)
    assert compare.main([str(tmp_path / "new"), str(tmp_path / "old")]) == 0
    printed = capsys.readouterr().out
    assert "1 cell only in the new run, not compared: fused/bf16/bs64/seq128/max_length" in printed
    assert "1 cell only in the old run, not compared: eager/fp32/bs1/seq128/max_length" in printed
    # the report's section lists both, with a count each
    blocks = comparison_section.blocks(ReportContext(table=new, comparison=result))
    shown = blocks[-1][1]
    assert set(shown.verdict) >= {"only in the new run", "only in the old run"}
    assert "1 only in the new run" in blocks[1][1] and "1 only in the old run" in blocks[1][1]
    # two runs without a shared cell: said so, and each run's cells still listed
    disjoint = compare.compare(added, removed)
    blocks = comparison_section.blocks(ReportContext(table=added, comparison=disjoint))
    assert "No cell of this run was in the earlier run" in blocks[1][1]
    assert blocks[-1][1].verdict.tolist() == ["only in the new run", "only in the old run"]
