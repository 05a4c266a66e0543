"""The experiment a config describes: the resolved device, the effective sweep, and checks that the JSON
schema cannot express. Imported by the Snakefile at parse time, so it must stay cheap (no torch)."""

import copy
import csv
import itertools
from pathlib import Path

# The aggregated tables of a run, in the order the aggregate step returns them
AGGREGATE_TABLES = ("cells.csv", "serving.csv", "profiles.csv", "profile_tops.csv")
# The default experiment: what a step run from the command line starts from, as the Snakefile does
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"
CONFIG_SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"
# The pairs settings every pair job shares (the rest of `pairs` chooses which pairs are made)
PAIRING_KEYS = ("rounds", "repeats", "max_ci_width", "seed")


class ConfigError(ValueError):
    """The configuration is invalid; the message names each problem and how to fix it."""
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


def planned_device(requested: str, scheduler_gives_gpus: bool = False) -> str:
    """The device the jobs are planned for, at parse time; jobs check it again with torch. `auto` is cuda where
    the model jobs are given a GPU by their executor (scheduler_gives_gpus: a cluster, whose login node may
    have none), else where NVML sees one here."""
    if requested == "auto":
        return "cuda" if scheduler_gives_gpus or cuda_visible() else "cpu"
    return requested


def fallback_notes(experiment: dict, requested_device: str, hub_ok: bool, cpu_applied: dict | None = None) -> list[str]:
    """One console line per fallback the run will take, known at parse time: CPU instead of a GPU, and the hub
    out of reach where the dataset or the model may come from it (whether the local cache has them is known
    only when their jobs run: each says on the console what it used, once).

    experiment: the effective config (device resolved); requested_device: config's `device` as given;
    hub_ok: whether the Hugging Face hub answered (workflow_scripts.hub.hub_reachable); cpu_applied: the
    cpu_overrides applied ({section: {key: value}}, cpu_overrides()[0]), named so that an edit of those keys
    in config.yaml is not replaced unseen."""
    notes = []
    if experiment["device"] == "cpu" and requested_device == "auto":
        replaced = [f"{section}.{key}" for section, values in (cpu_applied or {}).items() for key in values]
        notes.append("No CUDA GPU found: running on CPU, with the narrower sweep of cpu_overrides (config.yaml)"
                     + (f", which replaces {', '.join(replaced)}: to change these on CPU, edit cpu_overrides or "
                        "give them with --config or --configfile" if replaced else ""))
    # the fallback each source takes where the local cache lacks it (dataset.source / model.weights: auto)
    fallbacks = {name: fallback for name, fallback, auto in (
        ("dataset", "the bundled sample", experiment["dataset"]["source"] == "auto"),
        ("model", "random weights", experiment["model"]["weights"] == "auto")) if auto}
    if not hub_ok and fallbacks:
        jobs = " and ".join(f"{name} job" for name in fallbacks)
        notes.append(f"Hugging Face hub not reachable (or HF_HUB_OFFLINE=1): the {jobs} will say on this console "
                     f"what {'they' if len(fallbacks) > 1 else 'it'} used, the local cache or "
                     f"{' and '.join(fallbacks.values())}, when {'they run' if len(fallbacks) > 1 else 'it runs'}")
    return notes


def load_config(*overlays: str | Path) -> dict:
    """config.yaml with each overlay file merged on top (nested sections key by key, lists replaced), as
    `--configfile` layers files; not checked (checked_config does)."""
    import yaml

    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for path in overlays:
        config = merged(config, yaml.safe_load(Path(path).read_text()) or {})
    return config


def merged(base: dict, overlay: dict) -> dict:
    """`overlay` over `base`: dictionaries merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def command_line_values(config: dict, schema_path: str) -> None:
    """Give `--config` values their types, in place: Snakemake reads a value inside a mapping or list with
    YAML's base loader, so `--config sweep='{"batch_sizes": [2, 16]}'` arrives as ['2', '16'], and reads
    only True/False as booleans (`strict=true` arrives as 'true'). A string the schema refuses is read as a
    YAML scalar (2, 0.5, true, null) and kept where the schema then accepts it; other strings stay."""
    import jsonschema
    import yaml

    with open(schema_path) as handle:
        validator = jsonschema.Draft202012Validator(yaml.safe_load(handle))
    for _ in range(1000):  # one value per pass: each fix may change which branch of a oneOf applies
        for error in every_error(validator.iter_errors(config)):
            if error.validator != "type" or not isinstance(error.instance, str) or not error.absolute_path:
                continue
            try:
                value = yaml.safe_load(error.instance)
            except yaml.YAMLError:
                continue
            if isinstance(value, bool) and error.instance.lower() not in ("true", "false"):
                continue  # YAML 1.1 also reads yes/no/on/off as booleans: accept only true and false
            expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            if not isinstance(value, str) and any(validator.is_type(value, kind) for kind in expected):
                *parents, last = error.absolute_path
                container = config
                for key in parents:
                    container = container[key]
                container[last] = value
                break
        else:
            return


def every_error(errors):
    """Schema errors and, for oneOf/anyOf, the errors of each alternative."""
    for error in errors:
        yield error
        yield from every_error(error.context or [])


def in_key_order(value):
    """The same value with every mapping's keys sorted. Snakemake records each param as its repr, in which
    a dict's key order shows: params made from key-ordered config compare by value."""
    if isinstance(value, dict):
        return {key: in_key_order(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [in_key_order(item) for item in value]
    return value


def cpu_overrides(config: dict, defaults: dict | None) -> tuple[dict, list[str]]:
    """(the cpu_overrides to apply, the keys they leave alone). A key the user set to something other than
    its value in the default config.yaml (`defaults`) is the user's choice and wins over cpu_overrides."""
    applied, kept = {}, []
    for section, values in (config.get("cpu_overrides") or {}).items():
        for key, value in values.items():
            default = ((defaults or {}).get(section) or {}).get(key, config[section].get(key))
            if config[section].get(key) != default:
                kept.append(f"{section}.{key}")
            else:
                applied.setdefault(section, {})[key] = value
    return applied, kept


def effective(config: dict, defaults: dict | None = None, scheduler_gives_gpus: bool = False) -> dict:
    """Config with `cpu_overrides` merged in when the device is CPU (except keys the user set, see
    cpu_overrides), `device` resolved (see planned_device), checked, every mapping in key order."""
    resolved = copy.deepcopy(config)
    resolved["device"] = planned_device(config["device"], scheduler_gives_gpus)
    if resolved["device"] == "cpu":
        for section, values in cpu_overrides(config, defaults)[0].items():
            resolved[section] = {**resolved[section], **values}
    resolved.pop("cpu_overrides", None)
    check(resolved)
    return in_key_order(resolved)


def checked_config(config: dict, schema_path: str | Path = CONFIG_SCHEMA) -> dict:
    """A run's config as every job sees it: `--config` strings typed (command_line_values), checked against
    the schema (jsonschema, as snakemake.utils.validate checks it; the schema declares no defaults: config.yaml
    holds them), every mapping in key order. Raises ConfigError whose message is one line per violation naming
    the key (schema_errors). Changes `config` in place."""
    command_line_values(config, str(schema_path))
    problems = schema_errors(config, str(schema_path))
    if problems:
        raise ConfigError("\n  ".join(problems))
    return in_key_order(config)


def step_config(configfiles=(), config_values=(), section_values: dict[str, list[str]] | None = None,
                device: str | None = None) -> dict:
    """The effective experiment of a step run from the command line, resolved as the Snakefile resolves a
    run's (then each step takes the slice its rule's `params:` gives, e.g. `tolerance(experiment, precision)`).

    configfiles: overlays over config.yaml, as `--configfile`; config_values: Snakemake's `--config KEY=VALUE`
    entries; section_values: KEY=VALUE entries per section, e.g. {"measurement": ["windows=20"]} or
    {"triton.load": ["concurrency=[1, 4]"]} (values read as YAML); device: `--device` over config's `device`
    (None: config's). Checked (checked_config, then effective: cpu_overrides applied where the device is CPU,
    except keys the user set). Raises ConfigError naming each problem, before any work."""
    import yaml

    config = load_config(*configfiles)
    if config_values:
        from snakemake.cli import parse_config  # seconds to import: only when there is something to parse

        from workflow_scripts.command_line import problems

        bad = problems(["--config", *config_values])  # what Snakemake's parser refuses with a traceback
        if bad:
            raise ConfigError("\n  ".join(bad))
        config = merged(config, parse_config(list(config_values)))
    for section, entries in (section_values or {}).items():
        for entry in entries:
            key, equals, value = entry.partition("=")
            if not equals:
                raise ConfigError(f"{section}: {entry!r} is not KEY=VALUE")
            overlay = {key: yaml.safe_load(value)}
            for part in reversed(section.split(".")):
                overlay = {part: overlay}
            config = merged(config, overlay)
    if device:
        config["device"] = device
    return effective(checked_config(config), yaml.safe_load(DEFAULT_CONFIG.read_text()))


def tolerance(experiment: dict, precision: str) -> dict:
    """The correctness tolerance of one precision: {max_abs_diff, min_agreement} (rules' `tolerance` param)."""
    return experiment["correctness"]["tolerance"][precision]


def pairing(experiment: dict) -> dict:
    """What every pair job shares: rounds, repeats, max_ci_width, seed (rule pair's `pairing` param)."""
    return {key: experiment["pairs"][key] for key in PAIRING_KEYS}


def profiling_settings(experiment: dict, padding: str) -> dict:
    """What a profile job measures: iterations and warmup_iters, and with dynamic padding the number of
    distinct batches (with max_length padding every batch runs the same kernels, so it changes nothing)."""
    profiling = experiment["profiling"]
    settings = {"iterations": profiling["iterations"], "warmup_iters": profiling["warmup_iters"]}
    if padding == "dynamic":
        settings["max_distinct_batches"] = experiment["measurement"]["max_distinct_batches"]
    return settings


def report_settings(experiment: dict) -> dict:
    """What the report step reads of the config: baseline, targets and budgets {latency_ms, percentile}."""
    report = experiment["report"]
    return {"baseline": report["baseline"], "targets": report["targets"],
            "budgets": {"latency_ms": report["latency_budgets_ms"], "percentile": report["budget_percentile"]}}


def check(config: dict) -> None:
    """What the schema cannot say: references between keys, merged pieces, the model's geometry."""
    sizes, samples = config["sweep"]["batch_sizes"], config["dataset"].get("max_samples")
    if samples is not None and max(sizes) > samples:
        raise ConfigError(f"sweep.batch_sizes has {max(sizes)}, more than dataset.max_samples ({samples}): every "
                          "batch would repeat rows. Raise max_samples or use smaller batch sizes")
    check_model(config)
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
    measurement = config["measurement"]
    if measurement["warmup_max_seconds"] < measurement["warmup_seconds"]:
        raise ConfigError(f"measurement.warmup_max_seconds ({measurement['warmup_max_seconds']}) is below "
                          f"measurement.warmup_seconds ({measurement['warmup_seconds']}): the cap must allow the "
                          "minimum warm-up")
    profiled_axes(config)
    paired_axes(config)


def check_model(config: dict) -> None:
    """The model's config is known before any job (local folder, cache, or shipped), and every seq_len fits
    its position embeddings. An id known only to the hub passes when the hub is reachable (the model job
    fetches it and the tokenize job checks the lengths); offline it is refused here."""
    from workflow_scripts.hub import hub_reachable
    from workflow_scripts.model_config import ModelConfigUnavailable, find_config, seq_len_problem

    settings = config["model"]
    try:
        geometry, _ = find_config(settings["id"])
    except ModelConfigUnavailable as error:
        if hub_reachable():
            return
        raise ConfigError(f"{error} (the Hugging Face hub is not reachable from here)") from None
    geometry = {**geometry, **(settings.get("config_overrides") or {})}
    for seq_len in config["sweep"]["seq_lens"]:
        problem = seq_len_problem(seq_len, geometry, settings["id"])
        if problem:
            raise ConfigError(problem)


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
    return selected_axes(config, "profiling", "profile only cells the sweep times")


def paired_axes(config: dict) -> dict:
    """Engines, precisions (all of the sweep's) and batch sizes of the side-by-side pairs, resolved and checked."""
    return selected_axes(config, "pairs", "pair only cells the sweep times")


def selected_axes(config: dict, section: str, advice: str) -> dict:
    """The sweep axes that config[section] chooses: `all` / `ends` resolved (a missing axis is `all`; `ends`
    is the smallest and largest batch size), lists checked against the sweep. Raises ConfigError."""
    sweep, chosen_in = config["sweep"], config[section]
    sizes = sorted(sweep["batch_sizes"])
    chosen = {axis: chosen_in.get(axis, "all") for axis in ("engines", "precisions", "batch_sizes")}
    defaults = {"engines": sweep["engines"], "precisions": sweep["precisions"],
                "batch_sizes": sorted({sizes[0], sizes[-1]})}
    for axis, value in chosen.items():
        if value in ("all", "ends"):
            chosen[axis] = defaults[axis] if value != "all" or axis != "batch_sizes" else sizes
            continue
        outside = [v for v in value if v not in sweep[axis]]
        if outside:
            raise ConfigError(f"{section}.{axis} has {outside}, which are not in sweep.{axis} {sweep[axis]} "
                              f"(on {config['device']}): {advice}")
    return chosen


def profiled_cells(config: dict) -> list[dict]:
    """The cells the profiling steps profile: the sweep narrowed to the `profiling` section's engines,
    precisions and batch sizes (experiment.profiled_axes)."""
    axes = profiled_axes(config)
    return cells({**config["sweep"], **axes})


def paired_cells(config: dict) -> list[dict]:
    """The cells the pair step times against the baseline: the sweep narrowed to the `pairs` section's axes
    (experiment.paired_axes)."""
    axes = paired_axes(config)
    return cells({**config["sweep"], **axes})


def cells(sweep: dict) -> list[dict]:
    """Every cell of a sweep: the product of engines, precisions, batch sizes, sequence lengths and paddings."""
    return [dict(engine=e, precision=p, batch_size=b, seq_len=s, padding=pad)
            for e, p, b, s, pad in itertools.product(sweep["engines"], sweep["precisions"], sweep["batch_sizes"],
                                                     sweep["seq_lens"], sweep["paddings"])]


def nested_override(path: list[str], value: str) -> str:
    """The `--config` entry that sets the nested key `path` (outermost first) to `value` (YAML text), e.g.
    (["sweep", "batch_sizes"], "[2, 16]") -> `"sweep={batch_sizes: [2, 16]}"`, quoted for the shell.
    Snakemake takes top-level keys only on its command line, and merges such a mapping into the config key by
    key: the section's other keys keep their values."""
    inner = value
    for key in reversed(path[1:]):
        inner = f"{{{key}: {inner}}}"
    return f'"{path[0]}={inner}"'


def sections_with(key: str, schema: dict) -> list[str]:
    """The top-level sections of the config schema that have `key` among their own keys, in schema order."""
    return [section for section, subschema in schema.get("properties", {}).items()
            if key in (resolved(subschema, schema).get("properties") or {})]


def yaml_text(value) -> str:
    """A value as one line of YAML flow text (no double quotes, so it fits in a double-quoted shell word)."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("\n...\n").strip()


def override_hint(error, schema: dict) -> str:
    """For a schema error that a mistyped override causes (a dotted key, a nested key at the top level, a
    section given something other than a mapping), the form that works; "" for other errors."""
    if error.validator == "additionalProperties" and not error.absolute_path:
        hints = []
        for key in sorted(set(error.instance) - set(schema.get("properties", {}))):
            value = yaml_text(error.instance[key])
            if "." in key:
                path, what = key.split("."), "a dotted path, which Snakemake does not read as nesting"
            elif sections_with(key, schema):
                sections = sections_with(key, schema)
                path, what = [sections[0], key], f"a key of {', '.join(f'`{s}`' for s in sections)}, not a top-level key"
            else:
                continue
            nested = f"{path[0]}: " + "".join(f"{{{part}: " for part in path[1:]) + value + "}" * (len(path) - 1)
            hints.append(f"`{key}` is {what}: nest it, `{nested}` in a config file, or on the command line "
                         f"--config {nested_override(path, value)} (the section's other keys keep their values)")
        return "; ".join(hints)
    if (error.validator == "type" and error.validator_value == "object" and len(error.absolute_path) == 1
            and not isinstance(error.instance, dict)):
        section = error.absolute_path[0]
        keys = list(resolved(schema["properties"][section], schema).get("properties") or {"key": None})
        return (f"`{section}` takes a mapping of its keys ({', '.join(keys)}), e.g. --config "
                f"{nested_override([section, keys[0]], '...')} (its other keys keep their values)")
    return ""


def schema_errors(config: dict, schema_path: str) -> list[str]:
    """Every schema violation as one short line naming the key, e.g. `sweep.batch_sizes[0]: 0 is less ...`,
    with the form that works where a mistyped override caused it (override_hint)."""
    import jsonschema
    import yaml

    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    validator = jsonschema.Draft202012Validator(schema)
    absent = [key for key in schema.get("required", []) if key not in config]
    if absent:  # config.yaml itself was not read: every other error would follow from that
        project_config = Path(schema_path).resolve().parents[1] / "config.yaml"
        return [f"(top level): {', '.join(absent)} missing: config.yaml, which sets them, was not read (Snakemake "
                f"looks for it in the run's working directory, {Path.cwd()}). From another folder (--directory, "
                f"-s) name it first: --configfile {project_config} my_overrides.yaml"]
    lines = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        message = error.message
        if error.validator in ("oneOf", "anyOf"):  # jsonschema says only "not valid under any of the given schemas"
            message = (f"{error.instance!r} is not allowed; allowed: "
                       + "; or ".join(describe(option, schema) for option in error.validator_value))
        hint = override_hint(error, schema)
        lines.append(f"{where or '(top level)'}: {message}" + (f". {hint}" if hint else ""))
    return lines


def resolved(subschema: dict, root: dict) -> dict:
    """A subschema with its `$ref` (local references only: "#/$defs/engine") merged in."""
    if "$ref" not in subschema:
        return subschema
    target = root
    for part in subschema["$ref"].lstrip("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in subschema.items() if k != "$ref"}}


def describe(subschema: dict, root: dict) -> str:
    """One alternative of a schema in words, e.g. `'all'` or `a list of 'eager', 'fused' (may be empty)`."""
    subschema = resolved(subschema, root)
    if "const" in subschema:
        return repr(subschema["const"])
    if "enum" in subschema:
        return ", ".join(map(repr, subschema["enum"]))
    if subschema.get("type") == "array":
        least = subschema.get("minItems", 0)
        return (f"a list of {describe(subschema.get('items', {}), root)}"
                + (" (may be empty)" if least == 0 else f" (at least {least})"))
    if "type" in subschema:
        kinds = subschema["type"] if isinstance(subschema["type"], list) else [subschema["type"]]
        bound = f" >= {subschema['minimum']}" if "minimum" in subschema else ""
        return " or ".join(kinds) + bound
    return "any value"


# The columns of cells.csv that a comparison with an earlier run reads (workflow_scripts/compare.py)
COMPARED_COLUMNS = ["engine", "precision", "batch_size", "seq_len", "padding", "status", "p50_ms", "p50_ci_low_ms",
                    "p50_ci_high_ms", "gpu_name", "cpu", "model_id", "tokens_per_batch"]


def missing_compared_columns(path: str | Path) -> list[str]:
    """The COMPARED_COLUMNS that the cells.csv at `path` lacks (an older or hand-made table), from its header."""
    with open(path, newline="") as handle:
        header = next(csv.reader(handle), [])
    return [column for column in COMPARED_COLUMNS if column not in header]


def piece_tables(results_dir: str | Path) -> list[Path]:
    """The aggregated tables of an earlier piece of the sweep, given its results folder (config merge_pieces)."""
    return [Path(results_dir) / "aggregate" / name for name in AGGREGATE_TABLES]
