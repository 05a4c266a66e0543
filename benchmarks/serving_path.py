"""What the served path's settings change, before and after, in one run on one GPU. Prints numbers; not a test.

The model: bert-base geometry with random weights (workflow_scripts.model, offline), bf16, seq 128, rows of
the bundled sample, in Triton's Python backend compiled with reduce-overhead, on the bundled tritonserver.
For each variant (the Python backend's instance kind, instance count, the dynamic batcher's delay, and
optionally an earlier model.py) it builds the model repository, starts the server and runs the pipeline's own
load step (workflow_scripts.load_sweep) at 1 and 64 clients, with perf_analyzer where it runs (else the
Python load generator; the output names the client). Then the same model in-process (compile-reduce-overhead)
at batch 1 and 64, timed by the pipeline's own loop. Per variant it prints: served p50 at 1 client, minus
in-process batch 1, and its split (client, network+serialisation, queue, compute input/infer/output);
requests/s at 64 clients, as a share of in-process batch-64 samples/s, the mean server batch and the split.

Variants (--variants, in this order by default):
  before      KIND_CPU, 1 instance, 100 us delay, the model.py given by --before-model-py (skipped without it)
  cpu         KIND_CPU, 1 instance, 100 us delay: the pipeline's defaults with this checkout's model.py
  gpu         KIND_GPU (python_instance_kind: gpu)
  gpu-delay0  KIND_GPU, no batching delay
  gpu-2inst   KIND_GPU, 2 instances

usage: python benchmarks/serving_path.py [--variants cpu gpu ...] [--before-model-py FILE] [--seconds 2]
                                         [--work DIR] [--out FILE.json]
"""
import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workflow_scripts import dataset, load_sweep, model, tokens  # noqa: E402
from workflow_scripts.engines import create  # noqa: E402
from workflow_scripts.experiment import step_config  # noqa: E402
from workflow_scripts.measure import time_windows, warm_up  # noqa: E402
from workflow_scripts.stats import latency_summary  # noqa: E402
from workflow_scripts.serving import model_repository  # noqa: E402

SEQ_LEN, PRECISION, DEVICE = 128, "bf16", "cuda"
MODEL = {"id": "bert-base-uncased", "weights": "random", "num_labels": 2, "config_overrides": {}}
COMPILE_MODE, TWIN = "reduce-overhead", "compile-reduce-overhead"  # what the backend runs, and its in-process twin
VARIANTS = {  # name: (python_instance_kind, instance_count, max_queue_delay_us, earlier model.py)
    "before": ("cpu", 1, 100, True),
    "cpu": ("cpu", 1, 100, False),
    "gpu": ("gpu", 1, 100, False),
    "gpu-delay0": ("gpu", 1, 0, False),
    "gpu-2inst": ("gpu", 2, 100, False),
}
SPLIT = ("client", "network", "queue", "compute_input", "compute_infer", "compute_output")


def prepare_inputs(work: Path) -> tuple[Path, Path]:
    """The model folder (bert-base geometry, random weights) and tokens of the bundled sample at seq 128."""
    dataset.prepare({"name": "glue", "config": "sst2", "split": "validation", "max_samples": None,
                     "source": "sample"}, work / "rows.jsonl", work / "info.json")
    model.prepare(MODEL, work / "rows.jsonl", work / "model")
    tokens.tokenize(work / "model", work / "rows.jsonl", SEQ_LEN, work / "tokens.pt")
    return work / "model", work / "tokens.pt"


def in_process(model_dir: Path, token_path: Path, batch_size: int) -> dict:
    """p50 (ms) and samples/s of the twin engine at this batch, through the pipeline's timing loop."""
    data = tokens.load_tokens(token_path)
    engine = create(TWIN, model_dir=model_dir, device=DEVICE, precision=PRECISION,
                    settings={"fullgraph": True, "dynamic": None})
    engine.load()
    batch = {key: data[key][:batch_size].to(DEVICE) for key in ("input_ids", "attention_mask")}
    run = lambda b: engine.run(b["input_ids"], b["attention_mask"])  # noqa: E731
    measurement = step_config(section_values={"measurement": ["repeats=1"]}, device=DEVICE)["measurement"]
    warm_up(run, [batch], DEVICE, measurement)
    timed = time_windows(run, [batch], DEVICE, measurement)
    engine.close()
    p50 = latency_summary(timed, batch_size, 100, measurement["regime_min_gap"])["wall_ms"]["p50"]
    return {"p50_ms": p50, "samples_per_s": batch_size / p50 * 1000.0}


def served(variant: str, model_dir: Path, token_path: Path, work: Path, before_model_py: Path | None,
           seconds: float) -> list[dict]:
    kind, count, delay_us, earlier = VARIANTS[variant]
    settings = {"max_batch_size": 64, "instance_count": count, "python_compile_mode": COMPILE_MODE,
                "python_instance_kind": kind,
                "dynamic_batching": {"preferred_batch_sizes": [8, 16, 32, 64], "max_queue_delay_us": delay_us}}
    repository = model_repository.build("python", PRECISION, SEQ_LEN, model_dir, None, DEVICE, settings,
                                        work / variant / "repository")
    if earlier:
        name = model_repository.model_name("python", PRECISION)
        shutil.copy(before_model_py, repository / name / "1" / "model.py")
    cell = {"engine": "triton-python-grpc", "precision": PRECISION, "seq_len": SEQ_LEN, "padding": "max_length",
            "device": DEVICE}
    load = {"concurrency": [1, 64], "seconds": seconds, "warmup_seconds": 1.0, "client_processes": "auto",
            "client": "auto", "perf_analyzer": {"executable": "perf_analyzer", "stability_percentage": 10,
                                                "max_trials": 10}}
    return load_sweep.sweep(cell, model_dir, token_path, {"triton_python": repository},
                            {"launcher": "local", "startup_timeout_s": 900, "stop_grace_s": 15}, load,
                            [str(work / variant / f"c{n}.json") for n in (1, 64)])


def split_text(result: dict) -> str:
    """perf_analyzer's split; with the Python client the server's phases, the rest of the mean as client+network."""
    split = result.get("latency_split_ms")
    if split is None:
        server = result.get("server") or {}
        phases = {name: server.get(f"{name}_ms", float("nan")) for name in SPLIT[2:]}
        split = {"client+network": result["latency"]["wall_ms"]["mean"] - sum(phases.values()), **phases}
    return ", ".join(f"{name.replace('_', ' ')} {ms:.3f}" for name, ms in split.items() if name != "client_and_network")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--before-model-py", type=Path, help="an earlier python_backend_model.py, for 'before'")
    parser.add_argument("--seconds", type=float, default=2.0, help="each measurement window")
    parser.add_argument("--work", type=Path, help="keep the repositories, results and logs here")
    parser.add_argument("--out", type=Path, help="also write everything as JSON")
    args = parser.parse_args()
    if DEVICE == "cuda" and not torch.cuda.is_available():
        raise SystemExit("serving_path.py measures on a GPU; none is visible here")
    variants = [v for v in args.variants if not VARIANTS[v][3] or args.before_model_py]
    work = args.work or Path(tempfile.mkdtemp(prefix="serving_path_"))
    card = (f"{torch.cuda.get_device_name()} (GPU-{torch.cuda.get_device_properties(0).uuid})"
            if DEVICE == "cuda" else platform.processor() or "CPU")
    print(f"{card}, torch {torch.__version__}, "
          f"{platform.node()}, {time.strftime('%Y-%m-%d %H:%M:%S')}; work folder {work}", flush=True)
    model_dir, token_path = prepare_inputs(work)
    report = {"variants": {}, "in_process": {}}
    for batch_size in (1, 64):  # first, so that each variant's line can be printed as soon as it is measured
        report["in_process"][batch_size] = in_process(model_dir, token_path, batch_size)
    one, many = report["in_process"][1], report["in_process"][64]
    print(f"in-process {TWIN} {PRECISION}: batch 1 p50 {one['p50_ms']:.3f} ms; batch 64 p50 "
          f"{many['p50_ms']:.3f} ms = {many['samples_per_s']:,.0f} samples/s")
    print("variant (kind, instances, delay us) | client | 1 client: p50 ms (minus in-process) [split ms] | "
          "64 clients: requests/s (share of in-process), mean server batch [split ms]", flush=True)
    for variant in variants:
        started = time.perf_counter()
        c1, c64 = report["variants"][variant] = served(variant, model_dir, token_path, work, args.before_model_py,
                                                       args.seconds)
        line = [f"{variant} {VARIANTS[variant][:3]}", c1["load_client"]["name"]]
        for result, against in ((c1, None), (c64, many)):
            if result["status"] != "ok":
                line.append(f"{result['status']}: {result['reason']}")
            elif against is None:
                p50 = result["latency"]["wall_ms"]["p50"]
                line.append(f"{p50:.3f} ({p50 - one['p50_ms']:+.3f}) [{split_text(result)}]")
            else:
                rate = result["throughput_samples_per_s"]
                line.append(f"{rate:,.0f} ({rate / against['samples_per_s']:.0%}), batch "
                            f"{result['server'].get('mean_batch_per_execution', float('nan')):.1f} [{split_text(result)}]")
        print(" | ".join(line) + f"  ({time.perf_counter() - started:.0f} s)", flush=True)
        if args.out:  # after every variant: a run cut short keeps what it measured
            args.out.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
