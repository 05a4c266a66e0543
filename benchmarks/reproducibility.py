"""Do the side-by-side speedups reproduce? Runs the same small pair config in separate processes and prints
each ratio of every run with its 95% interval. Prints numbers; not a test.

The config: eager fp32 (the report's baseline) against fused bf16 and against compile-reduce-overhead bf16,
at batch 1 and 256, seq 128, bert-base geometry with random weights, each pair timed by the pipeline's own
pair step (workflow_scripts/pair.py: both engines in one process, windows alternated in random order) with
config.yaml's measurement and pairs settings. Each run is a fresh Python process (own CUDA context, own
compilation). The target: every run's ratio lies inside the other runs' intervals, and the headline ratio
(the fastest engine at batch 1) differs by at most 3% between runs.

Needs torch, transformers, pyyaml and jsonschema (the config check), no snakemake. A smoke check on CPU:
`--device cpu --tiny` (a 2-layer model at seq 32, batch 1 and 4, fp32: fused without compilation, and eager
against itself, whose ratio should be ~1.0).

usage: python benchmarks/reproducibility.py [--runs 2] [--out runs.json]
       python benchmarks/reproducibility.py --compare machine1.json machine2.json   (runs saved with --out)
       python benchmarks/reproducibility.py --device cpu --tiny
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

BASELINE = {"engine": "eager", "precision": "fp32"}
GPU_PAIRS = [("fused", "bf16"), ("compile-reduce-overhead", "bf16")]
GPU_BATCHES = [1, 256]
# on CPU: no bf16 speed-up to find and no CUDA graphs; the same code paths with what runs there quickly
CPU_PAIRS = [("fused", "fp32"), ("eager", "fp32")]
CPU_SETTINGS = {"fused": {"compile_mode": "none"}}
CPU_BATCHES = [1, 4]
TINY = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128,
        "vocab_size": 2000}
SEQ_LEN = 128


def build_inputs(folder: Path, tiny: bool, seq_len: int, rows: int) -> tuple[Path, Path]:
    """A random-weight model folder (as the model step writes it) and a tokens file of `rows` sequences."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from workflow_scripts.model import INFO_FILE
    from workflow_scripts.results import write_json

    torch.manual_seed(0)
    config = BertConfig(num_labels=2, **(TINY if tiny else {}))
    model_dir = folder / "model"
    BertForSequenceClassification(config).eval().save_pretrained(model_dir)
    write_json(model_dir / INFO_FILE, {"model_id": "bert-base-uncased", "weights": "random", "model_type": "bert",
                                       "num_hidden_layers": config.num_hidden_layers,
                                       "hidden_size": config.hidden_size, "config_overrides": TINY if tiny else {}})
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, config.vocab_size, (rows, seq_len), generator=generator)
    lengths = torch.randint(8, seq_len + 1, (rows,), generator=generator)  # padded as padding: max_length pads
    mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()
    ids[:, 0] = 101
    tokens = folder / f"tokens_seq{seq_len}.pt"
    torch.save({"input_ids": ids * mask, "attention_mask": mask}, tokens)
    return model_dir, tokens


def one_run(args) -> None:
    """In a child process: every pair of the config, written as one JSON list to args.child_out."""
    from workflow_scripts import engines, pair
    from workflow_scripts.experiment import pairing as pair_settings, step_config

    # config.yaml as a pipeline run on this device resolves it (cpu_overrides on CPU), these keys over it
    config = step_config(section_values={"measurement": args.measurement, "pairs": args.pairing}, device=args.device)
    measurement, pairing = config["measurement"], pair_settings(config)
    pairs, batches = (CPU_PAIRS, CPU_BATCHES) if args.tiny else (GPU_PAIRS, GPU_BATCHES)
    seq_len = 32 if args.tiny else SEQ_LEN
    if args.device == "cuda":
        import torch

        print(f"  {torch.cuda.get_device_name()}, torch {torch.__version__}", flush=True)
    found = []
    for engine, precision in pairs:
        for batch_size in batches:
            cell = {"engine": engine, "precision": precision, "batch_size": batch_size, "seq_len": seq_len,
                    "padding": "max_length", "device": args.device}
            settings = {"engine": {**engines.settings_from_config(engine, config),
                                   **(CPU_SETTINGS.get(engine, {}) if args.tiny else {})},
                        "baseline": engines.settings_from_config(BASELINE["engine"], config)}
            out = Path(args.child_out).with_suffix(f".{engine}_{precision}_bs{batch_size}.json")
            result = pair.run_pair(cell, BASELINE, args.model_dir, args.tokens, {}, settings, measurement, pairing,
                                   out)
            found.append(result)
            print(f"  {describe(result)}", flush=True)
    Path(args.child_out).write_text(json.dumps(found, default=str))


def describe(result: dict) -> str:
    cell, p = result["cell"], result["pair"]
    name = f"{cell['engine']} {cell['precision']} bs{cell['batch_size']} vs eager fp32"
    if result["status"] != "ok":
        return f"{name}: {result['status']} {result['reason']}"
    low, high = p["speedup_ci95"]
    unstable = f"  UNSTABLE: {'; '.join(p['unstable'])}" if p["unstable"] else ""
    return (f"{name}: {p['speedup']:.3f}x [{low:.3f}, {high:.3f}]  (p50 {p['p50_ms']['baseline']:.3f} / "
            f"{p['p50_ms']['engine']:.3f} ms){unstable}")


def compare(runs: list[list[dict]]) -> list[str]:
    """Per pair: every run's ratio and interval, whether each lies inside all the others' intervals, and the
    largest relative difference between runs."""
    lines = []
    for index, first in enumerate(runs[0]):
        same = [run[index] for run in runs]
        cell = first["cell"]
        name = f"{cell['engine']} {cell['precision']} bs{cell['batch_size']}"
        if any(r["status"] != "ok" for r in same):
            lines.append(f"{name}: not ok in every run ({', '.join(r['status'] for r in same)})")
            continue
        ratios = [r["pair"]["speedup"] for r in same]
        intervals = [r["pair"]["speedup_ci95"] for r in same]
        inside = all(lo <= ratios[i] <= hi for i in range(len(same)) for j, (lo, hi) in enumerate(intervals)
                     if i != j)
        spread = (max(ratios) - min(ratios)) / min(ratios)
        shown = "  ".join(f"run {i + 1}: {r:.3f}x [{lo:.3f}, {hi:.3f}]"
                          for i, (r, (lo, hi)) in enumerate(zip(ratios, intervals)))
        lines.append(f"{name:40s} {shown}  each inside the others' 95% CI: {'yes' if inside else 'NO'}  "
                     f"runs differ by {spread:.1%}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model and CPU-sized batches (smoke check)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--measurement", metavar="KEY=VALUE", nargs="*", default=[],
                        help="over the measurement keys of config.yaml, e.g. window_seconds=0.05")
    parser.add_argument("--pairing", metavar="KEY=VALUE", nargs="*", default=[],
                        help="over the pairs keys of config.yaml, e.g. rounds=10")
    parser.add_argument("--out", help="write every run's pair results here (JSON)")
    parser.add_argument("--compare", nargs="+", metavar="RUNS_JSON",
                        help="compare the runs saved with --out (e.g. on several machines) instead of running")
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_out:
        one_run(args)
        return
    if args.compare:
        runs = [run for path in args.compare for run in json.loads(Path(path).read_text())]
        print(f"side by side, {len(runs)} runs from {len(args.compare)} file(s):")
        print("\n".join(compare(runs)))
        return
    with tempfile.TemporaryDirectory(prefix="reproducibility-") as tmp:
        tmp = Path(tmp)
        model_dir, tokens = build_inputs(tmp, args.tiny, 32 if args.tiny else SEQ_LEN,
                                         max(CPU_BATCHES if args.tiny else GPU_BATCHES))
        runs = []
        for run in range(1, args.runs + 1):
            print(f"run {run} (a new process)", flush=True)
            child_out = tmp / f"run{run}.json"
            command = [sys.executable, __file__, "--device", args.device, "--model-dir", str(model_dir),
                       "--tokens", str(tokens), "--child-out", str(child_out),
                       "--measurement", *args.measurement, "--pairing", *args.pairing]
            subprocess.run(command + (["--tiny"] if args.tiny else []), check=True, cwd=REPO)
            runs.append(json.loads(child_out.read_text()))
    print("\nside by side, every run:")
    for line in compare(runs):
        print(line)
    if args.out:
        Path(args.out).write_text(json.dumps(runs, indent=1, default=str))


if __name__ == "__main__":
    main()
