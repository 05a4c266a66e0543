"""`nsys stats` CSV reports -> tidy tables: kernels, CUDA API calls, memory copies, NVTX ranges.

Column names are looked up by meaning, not position: they shift slightly between nsys releases.
"""

from pathlib import Path

import pandas as pd

# report -> its names, newest first (nsys 2023.2 renamed them; older releases know only the short names);
# `nsys stats --report <name> --format csv --output <prefix>` writes <prefix>_<name>.csv (no file when the
# capture holds no such activity); the step stores each under the report's first name
REPORTS = {"cuda_gpu_kern_sum": ("cuda_gpu_kern_sum", "gpukernsum"),
           "cuda_api_sum": ("cuda_api_sum", "cudaapisum"),
           "nvtx_sum": ("nvtx_sum", "nvtxsum", "nvtxppsum"),
           "cuda_gpu_mem_time_sum": ("cuda_gpu_mem_time_sum", "gpumemtimesum")}


def report_path(prefix: str | Path, report: str) -> Path:
    """The CSV `nsys stats --output <prefix>` writes for one report."""
    return Path(f"{prefix}_{report}.csv")


def read_report(prefix: str | Path, report: str) -> pd.DataFrame:
    """One exported report as a table (empty when nsys wrote none: no such activity in the capture)."""
    path = report_path(prefix, report)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(path)


def _column(frame: pd.DataFrame, *candidates: str) -> str:
    for name in candidates:
        if name in frame.columns:
            return name
    raise ValueError(f"none of the columns {candidates} in nsys report columns {list(frame.columns)}")


def _ns_to_ms(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce").fillna(0.0) / 1e6


def _totals(prefix, report: str, names: tuple[str, ...], counts: tuple[str, ...]) -> pd.DataFrame:
    """name, total_ms, calls of one summary report (kernels, API calls, copies share this layout)."""
    frame = read_report(prefix, report)
    if frame.empty:
        return pd.DataFrame(columns=["name", "total_ms", "calls"])
    return pd.DataFrame({"name": frame[_column(frame, *names)].astype(str),
                         "total_ms": _ns_to_ms(frame[_column(frame, "Total Time (ns)", "Total Time")]),
                         "calls": pd.to_numeric(frame[_column(frame, *counts)]).astype(int)})


def kernels(prefix) -> pd.DataFrame:
    """One row per kernel name over the captured range."""
    return _totals(prefix, "cuda_gpu_kern_sum", ("Name", "Kernel Name"), ("Instances", "Count", "Calls"))


def api_calls(prefix) -> pd.DataFrame:
    """CUDA API calls: name, total ms, calls."""
    return _totals(prefix, "cuda_api_sum", ("Name",), ("Num Calls", "Calls", "Count"))


def memory_copies(prefix) -> pd.DataFrame:
    """Memory copies and sets: operation, total ms, count."""
    return _totals(prefix, "cuda_gpu_mem_time_sum", ("Operation", "Name"), ("Count", "Instances"))


def nvtx_ranges(prefix) -> pd.DataFrame:
    """range (as nsys names it: `domain:name`, or `:name` / `name` in the default domain), instances, avg_ms."""
    frame = read_report(prefix, "nvtx_sum")
    if frame.empty:
        return pd.DataFrame(columns=["range", "instances", "avg_ms"])
    return pd.DataFrame({"range": frame[_column(frame, "Range", "Name")].astype(str).str.strip(),
                         "instances": pd.to_numeric(frame[_column(frame, "Instances", "Count")]).astype(int),
                         "avg_ms": _ns_to_ms(frame[_column(frame, "Avg (ns)", "Average (ns)", "Avg")])})


def iteration_range(prefix, name: str = "iteration") -> tuple[int, float] | None:
    """(instances, mean ms) of the per-iteration NVTX range (default domain), if the capture holds it."""
    ranges = nvtx_ranges(prefix)
    match = ranges[ranges["range"].isin([name, f":{name}"])]
    if match.empty:
        return None
    return int(match.instances.iloc[0]), float(match.avg_ms.iloc[0])
