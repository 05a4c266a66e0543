"""How fast is the harness itself? Prints numbers; not a test.

1. The whole small test config (tests/config.test.yaml) through snakemake on this machine, from scratch.
2. A no-op `snakemake -n` on the completed results (target: <= 3 s), best of 5.

usage: python benchmarks/harness_speed.py [--cores N] [--keep DIR]
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def snakemake(workdir: Path, cores: int, *args: str) -> float:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--cores", str(cores), "--configfile", str(REPO / "config.yaml"),
               str(REPO / "tests" / "config.test.yaml"), *args]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1",
                                                                  "HF_DATASETS_OFFLINE": "1"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="inferbench-harness-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    full = snakemake(workdir, args.cores)
    print(f"small test config, from scratch, --cores {args.cores}: {full:.1f} s")
    noop = min(snakemake(workdir, args.cores, "-n") for _ in range(5))
    print(f"no-op snakemake -n on completed results (best of 5): {noop:.2f} s (target <= 3 s)")


if __name__ == "__main__":
    main()
