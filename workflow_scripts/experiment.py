"""The experiment a config describes: the resolved device, the effective sweep, and checks that the JSON
schema cannot express. Imported by the Snakefile at parse time, so it must stay cheap (no torch)."""

import copy
import itertools


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
    baseline = config["report"]["baseline"]
    sweep = config["sweep"]
    for key, axis in (("engine", "engines"), ("precision", "precisions")):
        if baseline[key] not in sweep[axis]:
            raise ConfigError(f"report.baseline.{key} is {baseline[key]!r}, which is not in sweep.{axis} "
                              f"{sweep[axis]} (on {config['device']}): pick one of those")


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
