"""Step 5b: one side-by-side pair = an engine x precision against the report's baseline at one batch size.

Both engines are loaded in one process on one device and warmed up until steady; then, in every round, each
runs one short window, the two in random order, so both see the same host regime (the H200 virtual machines
switch between regimes within seconds: cells timed minutes apart catch different ones). The speedup is the
median over rounds of baseline window median / engine window median, with a hierarchical bootstrap interval
(repeats, then rounds). Writes one JSON result (kind pair) whatever happens, as a benchmark cell does.
"""

from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
import gc
import logging
import time
from pathlib import Path

import numpy as np
import torch

from workflow_scripts import environment, host_state, stats
from workflow_scripts.cell_step import recorded_result
from workflow_scripts.engines import create
from workflow_scripts.experiment import pairing
from workflow_scripts.measure import (pinned_to_one_core, time_first_call, time_window,
                                      warm_up)
from workflow_scripts.progress import Progress, cell_label, note, while_slow
from workflow_scripts.step_io import (add_artifact_arguments, add_cell_arguments, artifacts_from_args,
                                     cell_from_args, engine_settings, experiment_from_args, run_step,
                                     setup_logging)
from workflow_scripts.tokens import batch_rows, load_tokens, make_batch
from workflow_scripts.wording import count

log = logging.getLogger("pair")


def run_pair(cell: dict, baseline: dict, model_dir: str, tokens_path: str, artifacts: dict[str, dict],
             engine_settings: dict[str, dict], measurement: dict, pairing: dict, out_path: str) -> dict:
    """Measure `cell` (engine, precision, batch_size, seq_len, padding, device) against `baseline` (engine,
    precision) and write the result to `out_path`.

    artifacts / engine_settings: per role ("engine", "baseline"), what each engine loads and its settings.
    measurement: the config's measurement section (warm-up, window length, bootstrap resamples, pin_cpu).
    pairing: {"rounds", "repeats", "max_ci_width", "seed"}. Returns the result (status ok, skipped, oom or
    failed, with the reason); `pair` holds speedup (x, > 1: the engine is faster), speedup_ci95, the per-round
    ratios and window medians (ms) and the reasons the comparison is unstable, if any.
    """
    cell = {**cell, "device": environment.resolve_device(cell["device"]), "baseline": baseline}
    config_slice = {"cell": cell, "engine_settings": engine_settings, "measurement": measurement, "pairing": pairing}
    with recorded_result("pair", cell, model_dir, out_path, config_slice, log, measurement=measurement,
                         pairing=pairing, pair=None, host=None) as result:
        result["pair"], result["host"] = measure_pair(cell, baseline, model_dir, tokens_path, artifacts,
                                                      engine_settings, measurement, pairing, out_path)
    return result


def measure_pair(cell, baseline, model_dir, tokens_path, artifacts, engine_settings, measurement, pairing, out_path):
    """Create the baseline and the cell's engine, time them side by side (measure_loaded) and close both;
    returns the pair measurements (speedup, its 95% CI, per-role window medians in ms). Errors propagate to
    the caller's result (recorded_result classifies them)."""
    tokens = load_tokens(tokens_path)
    rows = batch_rows(tokens["input_ids"].shape[0], cell["batch_size"], measurement["max_distinct_batches"])
    specs = {"baseline": (baseline["engine"], baseline["precision"]), "engine": (cell["engine"], cell["precision"])}
    engines = {}
    try:
        for role, (name, precision) in specs.items():
            engines[role] = create(name, model_dir=model_dir, device=cell["device"], precision=precision,
                                   settings=engine_settings.get(role, {}), artifacts=artifacts.get(role, {}),
                                   result_path=Path(out_path).with_suffix(f".{role}.json"))
        return measure_loaded(engines, cell, tokens, rows, measurement, pairing)
    finally:
        for engine in engines.values():
            engine.close()
        gc.collect()


def measure_loaded(engines: dict, cell: dict, tokens: dict, rows: list, measurement: dict, pairing: dict):
    """Load both engines, warm each up, then time `repeats` x `rounds` windows, the two roles in a seeded
    random order per round; speedup = median over windows of baseline / engine window medians (wall ms),
    with a hierarchical bootstrap 95% CI (stats.hierarchical_ci). engines: {"baseline", "engine"} -> Engine.

    Both loads and warm-ups can take minutes on a CPU (bert-base: 143 s before the first round was seen), so
    each prints its lines as the cell step's do: an engine's load and first call when they are done, a line
    every PROGRESS_INTERVAL_S while a first call or a warm-up runs long, its warm-up when it ends."""
    device = cell["device"]
    name = f"pair {cell_label(cell)} vs {cell['baseline']['engine']} {cell['baseline']['precision']}"
    runners, batches = {}, {}
    for role, engine in engines.items():
        what = f"{role} {engine.name} {engine.precision}"
        batches[role] = [make_batch(tokens, r, cell["padding"], engine.input_device or device) for r in rows]
        start = time.perf_counter()
        engine.load()
        load_s = time.perf_counter() - start
        runners[role] = lambda batch, engine=engine: engine.run(batch["input_ids"], batch["attention_mask"])
        with while_slow(name, f"{what}: first call (compiling, capturing graphs)"):
            first_call_s = time_first_call(runners[role], batches[role][0], device)
        note(name, f"{what} loaded in {load_s:.1f} s, first call {first_call_s:.1f} s")
    rng = np.random.default_rng(pairing["seed"])
    roles = list(engines)
    window_p50 = {role: np.zeros((pairing["repeats"], pairing["rounds"])) for role in roles}
    cycles = {role: _cycle(batches[role]) for role in roles}
    progress = Progress(name, pairing["repeats"] * pairing["rounds"], "round")
    with pinned_to_one_core(measurement.get("pin_cpu", False), device):
        warmups = {}
        for role in roles:
            what = f"{role} {engines[role].name} {engines[role].precision}"
            with while_slow(name, f"{what}: warming up"):
                warmups[role] = warm_up(runners[role], batches[role], device, measurement)
            note(name, f"{what} {warmup_text(warmups[role])}")
        progress.start(f"timing {count(pairing['repeats'], 'repeat')} x {count(pairing['rounds'], 'round')} of "
                       "one window each")
        with host_state.monitor(device) as host:
            for repeat in range(pairing["repeats"]):
                for round_ in range(pairing["rounds"]):
                    for index in rng.permutation(len(roles)):
                        role = roles[index]
                        window = time_window(runners[role], cycles[role], device, measurement["window_seconds"],
                                             measurement["min_window_iters"])
                        window_p50[role][repeat, round_] = stats.median(window["wall_ms"])
                    host.sample()
                    progress.step(lambda: "speedup so far {:.3f}x".format(stats.median(
                        window_p50["baseline"].ravel()[:progress.done] / window_p50["engine"].ravel()[:progress.done])))
            host_summary = host.summary()
    ratios = window_p50["baseline"] / window_p50["engine"]
    speedup = stats.median(ratios)
    low, high = stats.hierarchical_ci(ratios, stats.median_of_windows, measurement["bootstrap_resamples"])
    progress.finish(f"speedup {speedup:.3f}x [{low:.3f}-{high:.3f}]")
    ratio_regimes = stats.regimes(ratios, measurement["regime_min_gap"])
    pair = {
        "speedup": speedup,
        "speedup_ci95": [low, high],
        "ratio_cv": stats.coefficient_of_variation(ratios),
        "ratios": ratios.tolist(),
        "ratio_regimes": ratio_regimes,
        "window_p50_ms": {role: window_p50[role].tolist() for role in roles},
        "p50_ms": {role: stats.median(window_p50[role]) for role in roles},
        "regimes": {role: stats.regimes(window_p50[role], measurement["regime_min_gap"]) for role in roles},
        "warmup": warmups,
    }
    pair["unstable"] = unstable_reasons(pair, host_summary, pairing["max_ci_width"])
    return pair, host_summary


def warmup_text(warmup: dict) -> str:
    """`warm in 4.2 s (6 windows)`, or `not steady after 20.1 s (...): timed anyway` of measure.warm_up's
    result ({"seconds", "windows", "steady"})."""
    windows = count(warmup["windows"], "window")
    if warmup["steady"]:
        return f"warm in {warmup['seconds']:.1f} s ({windows})"
    return f"warm-up not steady after {warmup['seconds']:.1f} s ({windows}): timed anyway, the pair is flagged"


def _cycle(batches: list[dict]):
    while True:
        yield from batches


def unstable_reasons(pair: dict, host: dict, max_ci_width: float) -> list[str]:
    """Why this comparison should not be trusted as one number (empty: it can be)."""
    reasons = []
    low, high = pair["speedup_ci95"]
    if (high - low) > max_ci_width * pair["speedup"]:
        reasons.append(f"95% interval {low:.3g}-{high:.3g}x is wider than {max_ci_width:.0%} of the speedup")
    if pair["ratio_regimes"]:
        low_level, high_level = pair["ratio_regimes"]["levels_ms"]
        reasons.append(f"the ratio switched between two levels, {low_level:.3g}x and {high_level:.3g}x")
    reasons += [f"{role} warm-up not steady after {w['seconds']:.1f} s" for role, w in pair["warmup"].items()
                if not w["steady"]]
    if host["throttled"]:
        reasons.append(f"GPU throttled ({', '.join(host['gpu']['throttle_reasons'])})")
    if host["steal_heavy"]:
        reasons.append(f"CPU steal time {host['cpu_steal_share']:.1%}")
    return reasons


def main(argv=None) -> None:
    """The command line: one pair against report.baseline (or --baseline-*) with its rule's settings."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cell_arguments(parser)
    parser.add_argument("--baseline-engine", help="over report.baseline.engine")
    parser.add_argument("--baseline-precision", help="over report.baseline.precision")
    add_artifact_arguments(parser, prefix="baseline-")
    parser.add_argument("--pairing", metavar="KEY=VALUE", nargs="+", default=[],
                        help="over keys of the pairs section, e.g. rounds=10")
    parser.add_argument("--measurement", metavar="KEY=VALUE", nargs="+", default=[],
                        help="over keys of the measurement section, e.g. window_seconds=0.1")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    experiment = experiment_from_args(parser, args, {"pairs": args.pairing, "measurement": args.measurement})
    setup_logging()
    cell, artifacts = cell_from_args(parser, args, experiment)
    baseline = {"engine": args.baseline_engine or experiment["report"]["baseline"]["engine"],
                "precision": args.baseline_precision or experiment["report"]["baseline"]["precision"]}
    settings = {"engine": engine_settings(args.engine, experiment),
                "baseline": engine_settings(baseline["engine"], experiment)}
    artifacts = {"engine": artifacts, "baseline": artifacts_from_args(parser, args, baseline["engine"], "baseline-")}
    run_pair(cell, baseline, args.model_dir, args.tokens, artifacts, settings,
             experiment["measurement"], pairing(experiment), args.out)


def run_job(smk) -> None:
    """The job of rule pair in rules/pairs.smk, called by `step_io.run_step`."""
    torch.set_num_threads(smk.threads)
    w = smk.wildcards
    cell = {"engine": w.engine, "precision": w.precision, "batch_size": int(w.batch_size),
            "seq_len": int(w.seq_len), "padding": w.padding, "device": smk.params.device}
    artifacts = {role: {kind: smk.input[f"{role}_{kind}"] for kind in kinds}
                 for role, kinds in smk.params.artifact_kinds.items()}
    run_pair(cell, smk.params.baseline, smk.input.model_dir, smk.input.tokens, artifacts,
             smk.params.engine_settings, smk.params.measurement, smk.params.pairing, smk.output.result)


if __name__ == "__main__":
    run_step(globals(), run_job, main)
