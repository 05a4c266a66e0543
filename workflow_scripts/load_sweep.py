"""Serving under load: a closed loop of N clients, each sending batch-1 requests back to back, for every N
in triton.load.concurrency, against one server (dynamic batching groups concurrent requests).

One result per N, in the one result schema (kind: load): per-request latency statistics, throughput in
requests/s, the server's own breakdown (queue, compute; mean batch size per execution), and `load_client`
naming who sent the requests (triton.load.client):
- perf_analyzer (serving/perf_analyzer.py): Triton's C++ load client with its own stability windows; its
  split of each request (client, network, queue, compute input/infer/output) is kept as `latency_split_ms`.
- python: threads spread over `triton.load.client_processes` processes (serving/load_clients.py); if they
  cannot keep up, the report shows client time far above the server's.
"""
from workflow_scripts.job_log import capture_errors

capture_errors(globals())  # first: an error in the imports below reaches the job's log too

import argparse
from pathlib import Path

from workflow_scripts import environment, stats
from workflow_scripts.engines import ENGINES, create, spec
from workflow_scripts.model import load_info
from workflow_scripts.outcome import classify
from workflow_scripts.progress import log as progress_log, while_slow
from workflow_scripts.results import SCHEMA_VERSION, write_cell_result
from workflow_scripts.serving import perf_analyzer
from workflow_scripts.serving.load_clients import LoadClientDied, closed_loop, planned_processes
from workflow_scripts.step_io import (add_artifact_arguments, add_config_arguments, artifacts_from_args,
                                     engine_settings, experiment_from_args, job_engine_settings, run_step,
                                     setup_logging)
from workflow_scripts.tokens import load_tokens


def sweep(cell: dict, model_dir: str, tokens_path: str, artifacts: dict, engine_settings: dict,
          load_settings: dict, out_paths: list[str]) -> list[dict]:
    """Start the served engine once and write one load result per concurrency level (out_paths in the order of
    load_settings["concurrency"]); a server that cannot start fails (or skips) every level with the same reason.
    cell: engine, precision, seq_len, padding, device; load_settings: config triton.load."""
    device = environment.resolve_device(cell["device"])
    base = {"schema_version": SCHEMA_VERSION, "kind": "load", "model": load_info(model_dir), "status": "ok",
            "reason": None, "latency": None, "throughput_samples_per_s": None, "server": None}
    tokens = load_tokens(tokens_path)
    input_ids, attention_mask = tokens["input_ids"].numpy(), tokens["attention_mask"].numpy()
    results = []
    engine, client, fallback = None, load_settings.get("client", "python"), None
    try:
        engine = create(cell["engine"], model_dir=model_dir, device=device, precision=cell["precision"],
                        settings=engine_settings, artifacts=artifacts, result_path=out_paths[0])
        if client != "python" and engine.perf_analyzer_cannot_drive:
            client, fallback = "python", engine.perf_analyzer_cannot_drive
        else:
            client, fallback = perf_analyzer.choose_client(client, _pa_settings(load_settings)["executable"])
        engine.load()
        if client == "python":  # the first request pays what a first call pays (compilation): not in a level
            with while_slow(f"load {_label(cell)}", "first request (compiling in the server)"):
                engine.run(tokens["input_ids"][:1], tokens["attention_mask"][:1])
        failure = None
    except Exception as error:  # every concurrency level gets the same status and reason (skipped: why)
        failure = classify(error)
    try:
        for concurrency, out_path in zip(load_settings["concurrency"], out_paths):
            result = {**base, "cell": {**cell, "device": device, "batch_size": 1, "concurrency": concurrency},
                      "load_client": {"name": client, "clients": concurrency}}
            if fallback:
                result["load_client"]["perf_analyzer_unusable"] = fallback
            if failure:
                result["status"], result["reason"] = failure
            else:
                measure = _perf_analyzer_level if client == "perf_analyzer" else _python_level
                result.update(measure(engine, input_ids, attention_mask, concurrency, load_settings, out_path))
                result["load_client"].update(result.pop("client_details"))
            result["environment"] = environment.capture(device, {"cell": result["cell"], "load": load_settings,
                                                                 "engine_settings": engine_settings})
            write_cell_result(out_path, result)
            progress_log.info("load %s: %s", _label(cell), _level_line(result))
            results.append(result)
    finally:
        if engine is not None:
            engine.close()
    return results


def _label(cell: dict) -> str:
    """`triton-python-grpc fp32 seq128`: a load sweep's cell (its levels are batch-1 requests)."""
    return f"{cell['engine']} {cell['precision']} seq{cell['seq_len']}"


def _level_line(result: dict) -> str:
    """One load level on the console: `concurrency 8 (python client): 412.3 requests/s, p50 19.021 ms`, or its
    status and the first line of its reason."""
    client = result["load_client"]
    head = f"concurrency {client['clients']} ({client['name']} client)"
    if result["status"] != "ok":
        return f"{head}: {result['status']}: {str(result['reason']).splitlines()[0]}"
    return (f"{head}: {result['throughput_samples_per_s']:.1f} requests/s, "
            f"p50 {result['latency']['wall_ms']['p50']:.3f} ms")


def _pa_settings(load_settings: dict) -> dict:
    return {"executable": "perf_analyzer", "stability_percentage": 10, "max_trials": 10,
            **load_settings.get("perf_analyzer", {})}


def _python_level(engine, input_ids, attention_mask, concurrency: int, load_settings: dict, out_path: str) -> dict:
    """One level with the project's own load generator: threads in several processes, timed in Python."""
    processes = planned_processes(load_settings.get("client_processes", "auto"), concurrency)
    level = {"client_details": {"processes": processes}}
    engine.begin_window()
    try:
        latencies, errors = closed_loop(engine.request_target(), input_ids, attention_mask, concurrency,
                                        load_settings["seconds"], load_settings["warmup_seconds"], processes)
    except (LoadClientDied, TimeoutError) as error:  # this level only; the next starts afresh
        latencies, errors, lost = [], 0, f"{type(error).__name__}: {error}"
    else:
        lost = None
    level["server"] = engine.end_window()  # the server's own breakdown of the level
    if lost:
        level["status"], level["reason"] = "failed", lost
    elif errors:
        level["status"], level["reason"] = "failed", f"{errors} of {errors + len(latencies)} requests failed"
    elif not latencies:  # the requests outlasted the window (a slow model on CPU): say so, not "0 of 0 failed"
        executed = (level["server"] or {}).get("requests")
        level["status"], level["reason"] = "failed", (
            f"no request completed within the {load_settings['seconds']} s window"
            + (f" (the server counted {executed})" if executed is not None else "")
            + ": raise triton.load.seconds")
    else:
        summary = stats.summarize(latencies, 1, 1000)
        level["latency"] = {"wall_ms": summary, "gpu_ms": None, "repeat_p50_ms": [summary["p50"]],
                            "repeat_p50_cv": 0.0, "iterations": len(latencies)}
        level["throughput_samples_per_s"] = len(latencies) / load_settings["seconds"]  # completed requests/s
    return level


def _perf_analyzer_level(engine, input_ids, attention_mask, concurrency: int, load_settings: dict,
                         out_path: str) -> dict:
    """One level measured by perf_analyzer (its own stability windows, each `seconds` long; its CSV and console
    output are kept beside the result). `server` is the server's statistics over the whole run, for the mean
    batch per execution; the latency split is perf_analyzer's, over the same requests as its latencies."""
    settings = _pa_settings(load_settings)
    stem = Path(out_path).with_suffix("")
    csv_path, console = f"{stem}.perf_analyzer.csv", f"{stem}.perf_analyzer.log"
    data = perf_analyzer.write_input_data(input_ids, attention_mask, f"{stem}.perf_analyzer_input.json")
    argv = perf_analyzer.command(settings["executable"], engine.request_target(), 1, concurrency, data,
                                 load_settings["seconds"] * 1000, settings["stability_percentage"],
                                 settings["max_trials"], csv_path)
    level = {"client_details": {"csv": csv_path, "log": console,
                                "version": perf_analyzer.version(settings["executable"])}}
    engine.begin_window()
    try:
        perf_analyzer.run(argv, console, timeout_s=load_settings["seconds"] * (settings["max_trials"] + 2) + 120)
        measured = perf_analyzer.parse_csv(csv_path)[0]
    except (perf_analyzer.PerfAnalyzerError, OSError, ValueError) as error:  # this level only
        level["status"], level["reason"] = "failed", str(error)
        measured = None
    finally:
        data.unlink(missing_ok=True)
    level["server"] = engine.end_window()
    if measured:
        level["latency"] = perf_analyzer.latency_result(measured)
        level["throughput_samples_per_s"] = measured["samples_per_s"]  # batch 1: requests/s
        level["latency_split_ms"] = measured["split_ms"]
    return level


def main(argv=None) -> None:
    """The command line: one served engine x precision through every concurrency level of triton.load."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", required=True, choices=[name for name in ENGINES if ENGINES[name].load_sweep])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--tokens", required=True)
    add_artifact_arguments(parser)
    parser.add_argument("--concurrency", type=int, nargs="+", help="over triton.load.concurrency")
    parser.add_argument("--seconds", type=float, help="over triton.load.seconds")
    parser.add_argument("--client-processes", help="over triton.load.client_processes (auto or a number)")
    parser.add_argument("--client", choices=perf_analyzer.CLIENTS, help="over triton.load.client")
    add_config_arguments(parser)
    parser.add_argument("--out-prefix", required=True, help="writes <prefix>_c<N>.json")
    args = parser.parse_args(argv)
    given = {"concurrency": args.concurrency, "seconds": args.seconds, "client_processes": args.client_processes,
             "client": args.client}
    experiment = experiment_from_args(parser, args, {"triton.load": [f"{key}={value}" for key, value in given.items()
                                                                     if value is not None]})
    artifacts = artifacts_from_args(parser, args, args.engine)
    setup_logging()
    load = experiment["triton"]["load"]
    cell = {"engine": args.engine, "precision": args.precision, "seq_len": args.seq_len, "padding": "max_length",
            "device": experiment["device"]}
    sweep(cell, args.model_dir, args.tokens, artifacts,
          engine_settings(args.engine, experiment), load, [f"{args.out_prefix}_c{n}.json" for n in load["concurrency"]])


def run_job(smk) -> None:
    """The job of rule load_sweep in rules/serving.smk, called by `step_io.run_step`."""
    w = smk.wildcards
    sweep({"engine": w.engine, "precision": w.precision, "seq_len": int(w.seq_len), "padding": "max_length",
           "device": smk.params.device}, smk.input.model_dir, smk.input.tokens,
          {kind: smk.input[kind] for kind in spec(w.engine).artifacts}, job_engine_settings(smk),
          smk.params.load, list(smk.output))


if __name__ == "__main__":
    run_step(globals(), run_job, main)
