"""The experiment a config describes: the resolved device, the effective sweep, and checks that the JSON
schema cannot express. Imported by the Snakefile at parse time, so it must stay cheap (no torch)."""

import copy
import csv
import itertools
from pathlib import Path

# The aggregated tables of a run, in the order the aggregate step returns them
AGGREGATE_TABLES = ("cells.csv", "serving.csv", "profiles.csv", "profile_tops.csv")


class ConfigError(ValueError):
    pass


def cuda_visible() -> bool:
    """Whether an NVIDIA GPU is visible, asked through NVML (importing torch here would slow every parse)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount() > 0
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no library: no GPU
        return False


def planned_device(requested: str) -> str:
    """The device the jobs are planned for, at parse time (NVML); jobs check it again with torch."""
    if requested == "auto":
        return "cuda" if cuda_visible() else "cpu"
    return requested


def command_line_booleans(config: dict) -> None:
    """`--config strict=true` arrives as the string 'true' (Snakemake reads only True/False as booleans)."""
    value = config.get("strict")
    if isinstance(value, str) and value.lower() in ("true", "false"):
        config["strict"] = value.lower() == "true"


def effective(config: dict) -> dict:
    """Config with `cpu_overrides` merged in when the device is CPU, and `device` resolved."""
    resolved = copy.deepcopy(config)
    resolved["device"] = planned_device(config["device"])
    if resolved["device"] == "cpu":
        for section, values in (config.get("cpu_overrides") or {}).items():
            resolved[section] = {**resolved[section], **values}
    resolved.pop("cpu_overrides", None)
    check(resolved)
    return resolved


def check(config: dict) -> None:
    for index, piece in enumerate(config.get("merge_pieces") or []):
        missing = [table.name for table in piece_tables(piece) if not table.is_file()]
        if missing:
            raise ConfigError(f"merge_pieces[{index}]: {piece} has no aggregate/{', aggregate/'.join(missing)} "
                              f"(a relative path starts at the run's working directory, {Path.cwd()})")
    baseline = config["report"]["baseline"]
    sweep = config["sweep"]
    outside = [(key, axis) for key, axis in (("engine", "engines"), ("precision", "precisions"))
               if baseline[key] not in sweep[axis]]
    if outside and not baseline_in_pieces(baseline, config.get("merge_pieces") or []):
        key, axis = outside[0]
        raise ConfigError(f"report.baseline.{key} is {baseline[key]!r}, which is not in sweep.{axis} "
                          f"{sweep[axis]} (on {config['device']}) nor in a merged piece: pick one of those")
    profiled_axes(config)


def baseline_in_pieces(baseline: dict, pieces: list) -> bool:
    """Whether an earlier piece of the sweep measured the baseline (a piece may time only the baseline)."""
    for piece in pieces:
        cells = Path(piece) / "aggregate" / "cells.csv"
        if cells.is_file():
            with open(cells, newline="") as handle:
                if any(row["engine"] == baseline["engine"] and row["precision"] == baseline["precision"]
                       for row in csv.DictReader(handle)):
                    return True
    return False


def profiled_axes(config: dict) -> dict:
    """Engines, precisions and batch sizes to profile: `all` / `ends` resolved, lists checked against the sweep."""
    sweep, profiling = config["sweep"], config["profiling"]
    sizes = sorted(sweep["batch_sizes"])
    chosen = {"engines": profiling["engines"], "precisions": profiling["precisions"],
              "batch_sizes": profiling["batch_sizes"]}
    defaults = {"engines": sweep["engines"], "precisions": sweep["precisions"],
                "batch_sizes": sorted({sizes[0], sizes[-1]})}
    for axis, value in chosen.items():
        if value in ("all", "ends"):
            chosen[axis] = defaults[axis] if value != "all" or axis != "batch_sizes" else sizes
            continue
        outside = [v for v in value if v not in sweep[axis]]
        if outside:
            raise ConfigError(f"profiling.{axis} has {outside}, which are not in sweep.{axis} {sweep[axis]} "
                              f"(on {config['device']}): profile only cells the sweep times")
    return chosen


def profiled_cells(config: dict) -> list[dict]:
    axes = profiled_axes(config)
    return cells({**config["sweep"], **axes})


def cells(sweep: dict) -> list[dict]:
    return [dict(engine=e, precision=p, batch_size=b, seq_len=s, padding=pad)
            for e, p, b, s, pad in itertools.product(sweep["engines"], sweep["precisions"], sweep["batch_sizes"],
                                                     sweep["seq_lens"], sweep["paddings"])]


def schema_errors(config: dict, schema_path: str) -> list[str]:
    """Every schema violation as one short line naming the key, e.g. `sweep.batch_sizes[0]: 0 is less ...`."""
    import jsonschema
    import yaml

    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    validator = jsonschema.Draft202012Validator(schema)
    lines = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        lines.append(f"{where or '(top level)'}: {error.message}")
    return lines


def piece_tables(results_dir: str | Path) -> list[Path]:
    """The aggregated tables of an earlier piece of the sweep, given its results folder (config merge_pieces)."""
    return [Path(results_dir) / "aggregate" / name for name in AGGREGATE_TABLES]
