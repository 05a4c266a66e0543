"""Why do launch-bound GPU cells vary between repeats? Prints numbers; not a test.

On CUDA only. bert-base geometry with random weights (as fused_probe.py), batch 1, seq 128. For eager fp32
and eager bf16 it runs the pipeline's own timing loop (workflow_scripts.measure: warm-up until steady, then
5 repeats of 5 windows of 0.2 s) under host settings that change how the launching thread is scheduled:
  threads=all  torch.set_num_threads(cores), as the benchmark jobs run today
  threads=1    one intra-op thread
  pinned       one thread, the process pinned to one core (os.sched_setaffinity)
and prints each repeat's p50 (median of its window medians, host wall time) and their coefficient of variation.

usage: python benchmarks/stability_probe.py [--repeats 5] [--windows 5]
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fused_probe import build_model_dir, make_inputs  # noqa: E402
from workflow_scripts.engines import create  # noqa: E402
from workflow_scripts.experiment import step_config  # noqa: E402
from workflow_scripts.measure import time_windows, warm_up  # noqa: E402
from workflow_scripts.stats import coefficient_of_variation, latency_summary  # noqa: E402


def set_host(variant: str, cores: set[int]) -> None:
    os.sched_setaffinity(0, cores)
    torch.set_num_threads(len(cores) if variant == "threads=all" else 1)
    if variant == "pinned":
        os.sched_setaffinity(0, {max(cores)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--windows", type=int, default=5)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("stability_probe needs a CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = False
    cores = os.sched_getaffinity(0)
    settings = step_config(section_values={"measurement": [f"repeats={args.repeats}", f"windows={args.windows}"]},
                           device="cuda")["measurement"]
    print(f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, {len(cores)} cores", flush=True)
    with tempfile.TemporaryDirectory(prefix="stability-probe-") as tmp:
        model_dir = build_model_dir(Path(tmp))
        ids, mask = make_inputs(1, 30522)
        batches = [{"input_ids": ids, "attention_mask": mask}]
        for precision in ("fp32", "bf16"):
            engine = create("eager", model_dir=model_dir, device="cuda", precision=precision)
            engine.load()
            run = lambda batch: engine.run(batch["input_ids"], batch["attention_mask"])  # noqa: E731
            with torch.inference_mode():
                for variant in ("threads=all", "threads=1", "pinned", "threads=all"):
                    set_host(variant, cores)
                    warm_up(run, batches, "cuda", settings)
                    timed = time_windows(run, batches, "cuda", settings)
                    p50s = latency_summary(timed, 1, 100, settings["regime_min_gap"])["repeat_p50_ms"]
                    cv = coefficient_of_variation(p50s)
                    print(f"eager {precision} bs1 {variant:12s} repeat p50s "
                          f"{' '.join(f'{p:.3f}' for p in p50s)} ms  CV {cv:.1%}", flush=True)
            os.sched_setaffinity(0, cores)


if __name__ == "__main__":
    main()
