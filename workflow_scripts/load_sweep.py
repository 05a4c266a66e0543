"""Serving under load: a closed loop of N clients, each sending batch-1 requests back to back, for every N
in triton.load.concurrency, against one server (dynamic batching groups concurrent requests).

One result per N, in the one result schema (kind: load): per-request latency statistics, throughput in
requests/s, and the server's own breakdown (queue, compute; mean batch size per execution).
The clients are threads spread over `triton.load.client_processes` processes (serving/load_clients.py); if
they still cannot keep up, the report shows client time far above the server's.
"""
import argparse
import logging

from workflow_scripts import environment, stats
from workflow_scripts.engines import create
from workflow_scripts.model import load_info
from workflow_scripts.outcome import classify
from workflow_scripts.results import SCHEMA_VERSION, write_cell_result
from workflow_scripts.serving.load_clients import LoadClientDied, closed_loop, planned_processes
from workflow_scripts.serving.server import stats_window
from workflow_scripts.step_io import job_engine_settings, setup_logging, snakemake_log
from workflow_scripts.tokens import load_tokens

log = logging.getLogger("load_sweep")


def sweep(cell: dict, model_dir: str, tokens_path: str, artifacts: dict, engine_settings: dict,
          load_settings: dict, out_paths: list[str]) -> list[dict]:
    device = environment.resolve_device(cell["device"])
    base = {"schema_version": SCHEMA_VERSION, "kind": "load", "model": load_info(model_dir), "status": "ok",
            "reason": None, "latency": None, "throughput_samples_per_s": None, "server": None}
    tokens = load_tokens(tokens_path)
    input_ids, attention_mask = tokens["input_ids"].numpy(), tokens["attention_mask"].numpy()
    results = []
    engine = create(cell["engine"], model_dir=model_dir, device=device, precision=cell["precision"],
                    settings=engine_settings, artifacts=artifacts, result_path=out_paths[0])
    try:
        engine.load()
        failure = None
    except Exception as error:  # every concurrency level gets the same status and reason
        failure = classify(error)
    try:
        for concurrency, out_path in zip(load_settings["concurrency"], out_paths):
            result = {**base, "cell": {**cell, "device": device, "batch_size": 1, "concurrency": concurrency}}
            if failure:
                result["status"], result["reason"] = failure
            else:
                processes = planned_processes(load_settings.get("client_processes", "auto"), concurrency)
                result["load_client"] = {"processes": processes, "clients": concurrency}
                before = engine.server.model_stats()
                try:
                    latencies, errors = closed_loop(engine.request_target(), input_ids, attention_mask, concurrency,
                                                    load_settings["seconds"], load_settings["warmup_seconds"],
                                                    processes)
                except (LoadClientDied, TimeoutError) as error:  # this level only; the next starts afresh
                    latencies, errors, lost = [], 0, f"{type(error).__name__}: {error}"
                else:
                    lost = None
                window_s = load_settings["seconds"]
                result["server"] = stats_window(before, engine.server.settled_model_stats())
                if lost:
                    result["status"], result["reason"] = "failed", lost
                elif errors or not latencies:
                    result["status"] = "failed"
                    result["reason"] = f"{errors} of {errors + len(latencies)} requests failed"
                else:
                    summary = stats.summarize(latencies, 1, 1000)
                    result["latency"] = {"wall_ms": summary, "gpu_ms": None, "repeat_p50_ms": [summary["p50"]],
                                         "repeat_p50_cv": 0.0, "iterations": len(latencies)}
                    result["throughput_samples_per_s"] = len(latencies) / window_s  # completed requests/s
            result["environment"] = environment.capture(device, {"cell": result["cell"], "load": load_settings,
                                                                 "engine_settings": engine_settings})
            write_cell_result(out_path, result)
            log.info("concurrency %d: %s %s", concurrency, result["status"],
                     f"{result['throughput_samples_per_s']:.1f} req/s" if result["throughput_samples_per_s"]
                     else result["reason"])
            results.append(result)
    finally:
        engine.close()
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="triton-python-grpc")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--repository", required=True, help="Triton model repository folder")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--client-processes", default="auto", help="processes the clients are spread over")
    parser.add_argument("--out-prefix", required=True, help="writes <prefix>_c<N>.json")
    args = parser.parse_args(argv)
    setup_logging()
    backend = args.engine.split("-")[1]
    cell = {"engine": args.engine, "precision": args.precision, "seq_len": args.seq_len, "padding": "max_length",
            "device": args.device}
    settings = {"launcher": "local", "startup_timeout_s": 300, "stop_grace_s": 15, "apptainer": {"sif": ""}}
    sweep(cell, args.model_dir, args.tokens, {f"triton_{backend}": args.repository}, settings,
          {"concurrency": args.concurrency, "seconds": args.seconds, "warmup_seconds": 1.0,
           "client_processes": args.client_processes},
          [f"{args.out_prefix}_c{n}.json" for n in args.concurrency])


if __name__ == "__main__":
    if "snakemake" in globals():
        smk = snakemake  # noqa: F821
        setup_logging(snakemake_log(smk))
        w = smk.wildcards
        sweep({"engine": w.engine, "precision": w.precision, "seq_len": int(w.seq_len), "padding": "max_length",
               "device": smk.params.device}, smk.input.model_dir, smk.input.tokens,
              {kind: smk.input[kind] for kind in smk.params.artifact_kinds}, job_engine_settings(smk),
              smk.params.load, list(smk.output))
    else:
        main()
