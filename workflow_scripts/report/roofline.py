"""The report's Roofline section: each ok cell's achieved TFLOP/s against the matmul peak and memory
bandwidth measured on the same GPU in the same run (workflow_scripts/roofline.py computes them)."""

import pandas as pd

from workflow_scripts.report.context import ReportContext, shows_tokens_per_batch
from workflow_scripts.results import CELL_KEYS
from workflow_scripts.roofline import (PRECISION_BYTES, model_flops_per_sequence, peak_ok, roofline_columns,
                                       streamed_parameters, weights_bytes)


def roofline_blocks(table: pd.DataFrame, peaks: dict | None, model_info: dict) -> list[tuple]:
    """The measured peaks, the batch-1 floors per precision, and each ok cell of the peaks' GPU against
    its roofline floor; or why there is no peak (calibration skipped or failed)."""
    blocks = [("h2", "Roofline")]
    if not peak_ok(peaks):
        status = (peaks or {}).get("status", "missing")
        reason = (peaks or {}).get("reason") or "no calibration result"
        return blocks + [("p", f"Roofline calibration {status}: {reason}. No peak to compare the cells with.")]
    rates, seq_lens = peaks["matmul_tflops"], sorted(set(table["seq_len"]))
    flops = ", ".join(f"{model_flops_per_sequence(model_info, s) / 1e9:.1f} GFLOP at seq {s}" for s in seq_lens)
    streamed = streamed_parameters(model_info)
    blocks.append(("p", f"Peaks measured on {peaks['gpu_name']} in this run (torch {peaks['torch']}): one "
                        f"{peaks['matmul']['bf16']['m']}³ GEMM per precision and one "
                        f"{peaks['copy']['buffer_bytes'] / 2**30:.0f} GiB device-to-device copy (bytes read + "
                        f"written). fp32 cells run with TF32 off and are compared with the fp32 peak. Model "
                        f"FLOPs per sequence from its config: {flops} (dynamic-padding cells: at their average "
                        f"padded length). Batch-1 floor: the {streamed:,} "
                        "parameters read by every forward (all but the word-embedding table, of which a batch "
                        "reads only its rows) divided by the measured bandwidth; a cell's roofline floor is the larger "
                        "of that and its FLOPs at the matmul peak."))
    blocks.append(("table", pd.DataFrame(
        [{"measured peak": f"matmul {name}", "value": f"{rate:,.1f} TFLOP/s"} for name, rate in rates.items()]
        + [{"measured peak": "device memory bandwidth", "value": f"{peaks['copy_gb_per_s']:,.0f} GB/s"}]
        + [{"measured peak": f"batch-1 floor {p}",
            "value": f"{weights_bytes(streamed, p) / (peaks['copy_gb_per_s'] * 1e9) * 1e3:.3f} ms"}
           for p in PRECISION_BYTES])))
    # peaks hold for the GPU they were measured on: cells merged from other machines are left out
    measured_here = table["gpu_name"] == peaks["gpu_name"] if "gpu_name" in table else True
    cells = roofline_columns(table[(table["status"] == "ok") & measured_here], peaks, model_info)
    if cells.empty:
        return blocks + [("p", "No ok cell to place on the roofline.")]
    keys = [k for k in CELL_KEYS if k in cells]
    shown = cells[keys].copy()
    if shows_tokens_per_batch(table):  # the FLOPs of a dynamic-padding cell follow its tokens per batch
        shown["tokens/batch"] = cells["tokens_per_batch"].map("{:,.1f}".format)
    shown["p50 ms"] = cells["p50_ms"].map("{:.3f}".format)
    shown["TFLOP/s"] = cells["achieved_tflops"].map("{:,.1f}".format)
    shown["% of matmul peak"] = cells["pct_of_matmul_peak"].map("{:.1%}".format)
    shown["roofline floor ms"] = cells["roofline_floor_ms"].map("{:.3f}".format)
    shown["p50 / floor"] = (cells["p50_ms"] / cells["roofline_floor_ms"]).map("{:.1f}×".format)
    return blocks + [("table", shown.reset_index(drop=True))]


def blocks(ctx: ReportContext) -> list[tuple]:
    """The Roofline section of the context's cells and peaks."""
    return roofline_blocks(ctx.table, ctx.peaks, ctx.model_info)
