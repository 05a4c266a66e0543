"""Whether this machine has the compiler torch.compile needs. Inductor writes C++ for the CPU, built with the
compiler in `CXX` or g++ (torch._inductor.config.cpp.cxx); on CUDA, Triton builds its kernel launchers with
the compiler in `CC` or the first of cc, gcc, clang on PATH (triton.runtime.build). Without it every compiled
cell fails in its first call; this names the gap before any cell starts."""

import os
import shutil

# device -> (environment variable that names the compiler, the names tried without it, what needs it, package)
COMPILERS = {
    "cpu": ("CXX", ("g++", "c++", "clang++"), "TorchInductor's C++ kernels", "g++"),
    "cuda": ("CC", ("cc", "gcc", "clang"), "Triton's kernel launchers", "gcc"),
}


def missing_compiler(device: str) -> str | None:
    """Why torch.compile cannot build code for `device` ("cpu" or "cuda") here, with the fix; None when the
    compiler it uses is on PATH."""
    variable, defaults, needed_by, package = COMPILERS["cpu" if device == "cpu" else "cuda"]
    names = (os.environ[variable],) if os.environ.get(variable) else defaults
    if any(shutil.which(name) for name in names):
        return None
    return (f"no compiler for {needed_by} ({' or '.join(names)} not on PATH): install one "
            f"(e.g. apt-get install {package}) or name it in {variable}")
