"""What both profilers' results are reduced to: per-iteration GPU work split into kernel categories,
launch counts, and the top kernels. Shared by the PyTorch-profiler and Nsight Systems paths."""

import re

# First match wins: attention before GEMM (fused attention kernels carry "gemm"/"cutlass" in their names),
# Inductor's GEMM templates (triton_tem_) before its pointwise/reduction kernels (triton_poi_/per_/red_).
CATEGORY_PATTERNS = (
    ("attention", r"flash|fmha|attention|attn|softmax|sdpa"),
    ("GEMM", r"gemm|cutlass|cublas|xmma|wgmma|matmul|triton_tem_|sm\d\d_.*(?:tn|nt|nn)|addmm|\bmm\b|_mm_|bmm"),
    ("copies", r"memcpy|memset|copy|cat_|catarray|contiguous|transpose"),
    ("normalisation/elementwise", r"norm|elementwise|vectorized|reduce|triton_(?:poi|per|red)_|gelu|tanh|add|mul|"
                                  r"embedding|index|gather|where|fill|unrolled"),
)
CATEGORIES = [name for name, _ in CATEGORY_PATTERNS] + ["other"]
_COMPILED = [(name, re.compile(pattern, re.IGNORECASE)) for name, pattern in CATEGORY_PATTERNS]
# CUDA API calls that put work on the GPU: a kernel each, or a whole CUDA graph
KERNEL_LAUNCH_CALLS = re.compile(r"^(cudaLaunchKernel|cuLaunchKernel|cudaLaunchKernelExC?|cuLaunchKernelEx|"
                                 r"cudaLaunchCooperativeKernel)(_v\d+)?$")
GRAPH_LAUNCH_CALLS = re.compile(r"^(cudaGraphLaunch|cuGraphLaunch)(_v\d+)?$")
TOP_KERNELS = 10


def category(kernel_name: str) -> str:
    """The kernel category (GEMM, attention, normalisation/elementwise, ...) whose pattern first matches the
    kernel's name, else "other"."""
    for name, pattern in _COMPILED:
        if pattern.search(kernel_name):
            return name
    return "other"


def summarize(kernels: list[dict], api_calls: list[dict], iterations: int, wall_ms_per_iter: float | None,
              memcpy_ms: float = 0.0) -> dict:
    """kernels: [{name, total_ms, calls}] over all profiled iterations; api_calls: [{name, total_ms, calls}].
    Returns per-iteration figures; GPU busy is the sum of kernel and copy times (one stream per engine)."""
    per_iter = 1.0 / iterations
    categories = {name: 0.0 for name in CATEGORIES}
    for kernel in kernels:
        categories[category(kernel["name"])] += kernel["total_ms"] * per_iter
    categories["copies"] += memcpy_ms * per_iter
    busy_ms = sum(categories.values())
    kernel_time = sum(k["total_ms"] for k in kernels) or 1.0
    top = sorted(kernels, key=lambda k: k["total_ms"], reverse=True)[:TOP_KERNELS]
    launches = sum(c["calls"] for c in api_calls if KERNEL_LAUNCH_CALLS.match(c["name"]))
    graph_launches = sum(c["calls"] for c in api_calls if GRAPH_LAUNCH_CALLS.match(c["name"]))
    return {
        "iterations": iterations,
        "wall_ms_per_iter": wall_ms_per_iter,
        "gpu_busy_ms_per_iter": busy_ms if kernels or memcpy_ms else None,
        "gpu_busy_fraction": (busy_ms / wall_ms_per_iter) if wall_ms_per_iter and (kernels or memcpy_ms) else None,
        "kernels_per_iter": sum(k["calls"] for k in kernels) * per_iter,
        "kernel_launches_per_iter": launches * per_iter,
        "graph_launches_per_iter": graph_launches * per_iter,
        "cuda_api_ms_per_iter": sum(c["total_ms"] for c in api_calls) * per_iter if api_calls else None,
        "category_ms_per_iter": categories,
        "top_kernels": [{"name": k["name"], "category": category(k["name"]), "calls_per_iter": k["calls"] * per_iter,
                         "ms_per_iter": k["total_ms"] * per_iter, "mean_us": 1000.0 * k["total_ms"] / k["calls"],
                         "time_fraction": k["total_ms"] / kernel_time} for k in top],
    }
