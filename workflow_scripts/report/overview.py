"""The report's opening: title, warnings (sample dataset, random weights, CPU run, every cell that is not
`ok`, unstable cells) and one paragraph on what was measured."""

import pandas as pd

from workflow_scripts import pair_speedups
from workflow_scripts.report.context import ReportContext, cell_name
from workflow_scripts.wording import count

# status -> what the warning says about its cells
STATUS_MEANINGS = {
    "mismatch": "outputs differ from fp32 eager beyond tolerance: their speed cannot be trusted",
    "failed": "crashed",
    "oom": "ran out of memory",
    "skipped": "could not run here",
}


def warnings_for(table: pd.DataFrame, dataset: dict, model: dict, max_repeat_cv: dict) -> list[str]:
    """One line per warning, most fundamental first.

    table: the cells; dataset: dataset_info.json; model: inferbench_model.json (its `warnings`);
    max_repeat_cv: device -> the repeat-median CV above which an ok cell is unstable (report.targets)."""
    notes = []
    if dataset["origin"] == "sample":
        why = "the configuration asked for it" if not dataset.get("hub_error") else "the Hugging Face hub was unreachable"
        notes.append(f"DATASET: this run used the {dataset['rows']}-sentence SST-2-format sample bundled with "
                     f"inferbench ({why}), not {dataset['name']}/{dataset['config']} {dataset['split']}. "
                     "Accuracy figures are not comparable with published SST-2 numbers.")
    wrapped = sorted(size for size in set(table.batch_size) if size > dataset["rows"])
    if wrapped:  # batch_rows wraps around: a batch larger than the dataset repeats rows
        notes.append(f"BATCHES REPEAT ROWS: the dataset has {dataset['rows']} rows, fewer than batch size(s) "
                     f"{', '.join(map(str, wrapped))}: those batches start again at row 0 (correctness is still "
                     "checked row by row; with dynamic padding the batch shapes are those of the repeated rows).")
    for warning in model.get("warnings", []):
        notes.append(f"MODEL: {warning}")
    devices = sorted(set(table.device))
    if devices == ["cpu"]:
        notes.append("CPU RUN: no GPU was used; latencies describe this CPU, not a GPU.")
    for status, meaning in STATUS_MEANINGS.items():
        bad = table[table.status == status]
        for reason, group in bad.groupby(bad.reason.fillna("")):
            cells = ", ".join(f"{r.engine}/{r.precision}/bs{r.batch_size}/seq{r.seq_len}/{r.padding}"
                              for r in group.itertuples())
            notes.append(f"{status.upper()}: {count(len(group), 'cell')} {meaning}: {reason} ({cells})")
    ok = table[table.status == "ok"]
    unstable = ok[ok.repeat_p50_cv > ok.device.map(max_repeat_cv)]
    if len(unstable):
        cells = ", ".join(f"{cell_name(r)} ({r.repeat_p50_cv:.1%})" for r in unstable.itertuples())
        notes.append(f"UNSTABLE: repeat medians spread more than {max_repeat_cv[devices[0]]:.0%} (CV) in: {cells}")
    return notes


def blocks(ctx: ReportContext) -> list[tuple]:
    """Title, warnings (or "No warnings.") and the paragraph on cells, dataset, model and latency."""
    table, dataset, model, baseline = ctx.table, ctx.dataset, ctx.model, ctx.baseline
    warnings = (warnings_for(table, dataset, model, ctx.targets["max_repeat_cv"])
                + pair_speedups.measurement_warnings(table, ctx.pairs))
    counts = ", ".join(f"{n} {s}" for s, n in table.status.value_counts().items())
    return [
        ("h1", f"inferbench report: {model['model_id']} ({model['num_hidden_layers']} layers, hidden "
               f"{model['hidden_size']}) on {ctx.machine}"),
        ("warnings", warnings) if warnings else ("p", "No warnings."),
        ("p", f"{count(len(table), 'cell')} ({counts}). Dataset: {dataset['origin']} ({dataset['rows']} sentences). "
              f"Model: {model['model_id']} ({model['weights']} weights, {model['num_parameters']:,} parameters). "
              f"Latency is the synchronised host wall time per batch. Speedups against "
              f"{baseline['engine']} {baseline['precision']} at the same batch size: side by side (both engines "
              "in one process, short windows alternated; the median of the paired window ratios with its 95% "
              "interval) where the run made that pair, with the ratio of the two cells' p50s beside it "
              "(\"unresolved\" where either cell is unstable)."),
    ]
