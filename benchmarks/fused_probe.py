"""How far is the fused engine from the stock Hugging Face layers? Prints numbers; not a test.

On CUDA only. bert-base geometry (transformers' BertConfig defaults, 2 labels) with random weights, no hub;
seq 128, batches of random token ids with padded tails. For batch 1 and 256 it prints the p50 of the GPU
time per forward (CUDA events around each synchronised call, 200 calls after warm-up) of:
eager fp32 (TF32 off, the pipeline's baseline), eager bf16, compile-reduce-overhead bf16 and fused bf16,
through the pipeline's own engine classes; then the fused logits' max |diff| against eager fp32 and the
number of GPU kernels in one fused forward and their GPU time by kernel (torch.profiler over one call).

usage: python benchmarks/fused_probe.py [--batch-sizes 1 256] [--fused-modes default none ...]
                                      [--fused-precisions bf16 fp16 fp32]
"""
import argparse
import gc
import platform
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from workflow_scripts.engines import create  # noqa: E402

SEQ_LEN = 128


def build_model_dir(folder: Path) -> Path:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(num_labels=2)).eval().save_pretrained(folder)
    return folder


def make_inputs(batch_size: int, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[CLS] + random tokens, each row padded after a random length (as padding: max_length gives)."""
    generator = torch.Generator().manual_seed(batch_size)
    ids = torch.randint(1000, vocab_size, (batch_size, SEQ_LEN), generator=generator)
    lengths = torch.randint(8, SEQ_LEN + 1, (batch_size,), generator=generator)
    mask = (torch.arange(SEQ_LEN)[None, :] < lengths[:, None]).long()
    ids[:, 0] = 101
    ids = ids * mask
    return ids.cuda(), mask.cuda()


def gpu_p50_ms(call, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(iters):
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        begin.record()
        call()
        end.record()
        torch.cuda.synchronize()
        times.append(begin.elapsed_time(end))
    return float(torch.tensor(times).median())


def count_kernels(call) -> tuple[int, list[tuple[str, int]], list[tuple[str, float]]]:
    """GPU kernels (not memcpy/memset) that one call launches, the most frequent names, and the names
    ranked by their summed GPU time (us)."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with warnings.catch_warnings():  # the profiler warns about its cycles, which one call does not use
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            call()
            torch.cuda.synchronize()
    names: dict[str, int] = {}
    gpu_us: dict[str, float] = {}
    for event in prof.events():
        if event.device_type == torch.autograd.DeviceType.CUDA and not event.name.startswith(("Memcpy", "Memset")):
            names[event.name] = names.get(event.name, 0) + 1
            gpu_us[event.name] = gpu_us.get(event.name, 0.0) + event.device_time_total
    ranked = sorted(names.items(), key=lambda item: -item[1])
    return sum(names.values()), ranked, sorted(gpu_us.items(), key=lambda item: -item[1])


def run_engine(label: str, engine_name: str, precision: str, settings: dict, model_dir: Path, inputs, args,
               reference=None, kernels=False) -> torch.Tensor | None:
    batch_size = inputs[0].shape[0]
    prefix = f"bs={batch_size} seq={SEQ_LEN} {label}"
    engine = None
    try:
        engine = create(engine_name, model_dir=model_dir, device="cuda", precision=precision, settings=settings)
        engine.load()
        start = time.perf_counter()
        with torch.inference_mode():
            logits = engine.run(*inputs).float().clone()
        torch.cuda.synchronize()
        first_s = time.perf_counter() - start
        p50 = gpu_p50_ms(lambda: engine.run(*inputs), args.iters, args.warmup)
        print(f"{prefix}: p50 {p50:.3f} ms (GPU time, CUDA events; first call {first_s:.1f} s)", flush=True)
        if reference is not None:
            diff = (logits - reference).abs().max().item()
            print(f"{prefix}: max |diff| vs eager fp32 logits {diff:.4g}", flush=True)
        if kernels:
            count, ranked, by_time = count_kernels(lambda: engine.run(*inputs))
            top = ", ".join(f"{n}x {name[:60]}" for name, n in ranked[:None if args.list_kernels else 6])
            print(f"{prefix}: {count} GPU kernels per forward (one call, profiled); most frequent: {top}",
                  flush=True)
            total = sum(us for _, us in by_time) or 1.0
            print(f"{prefix}: GPU time by kernel ({total / 1000:.3f} ms in all): " + ", ".join(
                f"{us / total:.1%} {name[:70]}" for name, us in by_time[:8]), flush=True)
        return logits
    except Exception:
        print(f"{prefix}: FAILED\n{traceback.format_exc()}", flush=True)
        return None
    finally:
        del engine
        gc.collect()
        torch.cuda.empty_cache()


def check_dynamic_padding(model_dir: Path, vocab_size: int, batch_size: int = 8) -> None:
    """Batches trimmed to their longest row, as padding: dynamic gives: fused bf16 against eager fp32."""
    engines = {}
    try:
        for name, precision in (("eager", "fp32"), ("fused", "bf16")):
            engines[name] = create(name, model_dir=model_dir, device="cuda", precision=precision)
            engines[name].load()
        ids, mask = make_inputs(batch_size, vocab_size)
        # the second pass replays graphs captured earlier, after others were captured in the same pool
        for length in (23, 57, 100, 128, 100, 57, 23):
            trimmed = ids[:, :length].contiguous(), mask[:, :length].contiguous()
            with torch.inference_mode():
                expected = engines["eager"].run(*trimmed).float()
                diff = (engines["fused"].run(*trimmed).float() - expected).abs().max().item()
            print(f"dynamic padding bs={batch_size} length {length}: fused bf16 max |diff| vs eager fp32 {diff:.4g}",
                  flush=True)
        print(f"fused graphs captured: {engines['fused'].describe()['cuda_graph_shapes']}", flush=True)
    except Exception:
        print(f"dynamic padding check: FAILED\n{traceback.format_exc()}", flush=True)
    finally:
        engines.clear()
        gc.collect()
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--fused-modes", nargs="+", default=["default"],
                        help="fused compile_mode values to try: default, none, max-autotune-no-cudagraphs")
    parser.add_argument("--fused-precisions", nargs="+", default=["bf16"], choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--check-dynamic", action="store_true",
                        help="also check fused bf16 on batches trimmed to shorter lengths (dynamic padding)")
    parser.add_argument("--list-kernels", action="store_true", help="name every kernel of a fused forward")
    parser.add_argument("--skip-compile", action="store_true", help="leave out compile-reduce-overhead")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("fused_probe needs a CUDA GPU")
    import transformers

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 as the pipeline's reference runs it
    torch.backends.cudnn.allow_tf32 = False
    print(f"GPU {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"transformers {transformers.__version__}, host {platform.node()}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fused-probe-") as tmp:
        model_dir = build_model_dir(Path(tmp))
        vocab_size = 30522
        for batch_size in args.batch_sizes:
            inputs = make_inputs(batch_size, vocab_size)
            reference = run_engine("eager fp32", "eager", "fp32", {}, model_dir, inputs, args)
            run_engine("eager bf16", "eager", "bf16", {}, model_dir, inputs, args, reference)
            if not args.skip_compile:
                run_engine("compile-reduce-overhead bf16", "compile-reduce-overhead", "bf16",
                           {"fullgraph": True, "dynamic": None}, model_dir, inputs, args, reference)
            for precision in args.fused_precisions:
                for mode in args.fused_modes:
                    run_engine(f"fused {precision} (compile_mode {mode})", "fused", precision, {"compile_mode": mode},
                               model_dir, inputs, args, reference, kernels=True)
        if args.check_dynamic:
            check_dynamic_padding(model_dir, vocab_size)
    print(f"probe took {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
