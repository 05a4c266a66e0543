"""How fast is the harness itself? Prints numbers; not a test.

Runs a config through snakemake from scratch in a fresh folder (default: the small test config), then prints
  - the sweep's wall time;
  - per job kind (rule), the median job wall time and the median overhead outside measurement and
    compilation: a job's wall time (its `benchmark:` file) minus its timed iterations and its first call
    (compilation), as its result records them (`phases_s`); kinds without a timed loop have nothing subtracted;
  - for benchmark cells, the median of each phase of a job's life (`phases_s`: interpreter start and imports,
    CUDA context, inputs, load, first call, correctness, timed calls with their statistics; `after` is the rest:
    writing the result, the interpreter's exit);
  - per GPU, how busy it was over the sweep: the share of the wall time a job held it (from the jobs' logs and
    benchmark files; also for the stand-in cards of `--gpus N` on a machine without GPU) and, where NVML sees
    cards, the mean share of time its kernels ran (NVML utilisation, sampled every 0.5 s);
  - optionally the wall time of a rerun after `rm -r results/bench` (`--rerun-bench`) and of a no-op
    `snakemake -n` on the completed results (`--noop`; target <= 3 s, best of 5).
`--analyse DIR` prints the tables for an existing run folder (e.g. a sweep resumed several times) instead.

usage: python benchmarks/harness_speed.py [--configfile F ...] [--cores N] [--gpus N] [--keep DIR]
                                          [--time-limit S] [--rerun-bench] [--noop] [--analyse DIR]
                                          [-- SNAKEMAKE_ARGS ...]
With --keep and --time-limit, a sweep longer than one sitting runs in several runs of the same command.
Arguments after `--` go to every snakemake run (e.g. `-- --scheduler greedy` where pulp is not installed).
Each run's snakemake output is kept in the run folder as `harness_run<N>.log`.
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CELL_NAME = re.compile(r"^(?P<engine>[^_]+)_(?P<precision>fp32|fp16|bf16)_bs(?P<batch_size>\d+)_seq(?P<seq_len>\d+)_"
                       r"(?P<padding>.+)$")
PLACED = re.compile(r"^(\S+ \S+) INFO placement: placed on GPU (\S+),")
PHASES = ("process", "cuda_context", "inputs", "batches", "load", "first_call", "correctness", "timed")


def snakemake(workdir: Path, configfiles: list[str], cores: str, gpus: int | None, *args: str,
              time_limit_s: float | None = None, log: Path | None = None) -> tuple[float, bool]:
    """(seconds, finished) of one snakemake run in `workdir`, its output kept in `log` (else discarded). Past
    `time_limit_s` it is stopped (SIGTERM: its jobs end, the next run resumes with --rerun-incomplete) and
    `finished` is False. Raises SystemExit with the tail of its output if it fails."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--cores", str(cores), "--rerun-incomplete", "--configfile", *configfiles, *args]
    if gpus is not None:
        command += ["--resources", f"gpu={gpus}"]
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
           "HF_DATASETS_OFFLINE": os.environ.get("HF_DATASETS_OFFLINE", "1")}
    start = time.perf_counter()
    with (open(log, "w+") if log else tempfile.TemporaryFile("w+")) as output:
        proc = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        try:
            proc.wait(timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return time.perf_counter() - start, False
        if proc.returncode:
            output.seek(0)
            raise SystemExit(f"snakemake failed ({proc.returncode}):\n{output.read()[-5000:]}")
    return time.perf_counter() - start, True


class Utilisation:
    """NVML utilisation of every card, sampled in a thread while the sweep runs (nothing without NVML)."""

    def __init__(self, period_s: float = 0.5):
        self.samples: dict[str, list[int]] = {}
        self.period_s, self._stop = period_s, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # no driver: no cards to watch
            return
        handles = {pynvml.nvmlDeviceGetUUID(h): h for h in
                   (pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount()))}
        while not self._stop.wait(self.period_s):
            for uuid, handle in handles.items():
                self.samples.setdefault(uuid, []).append(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        pynvml.nvmlShutdown()


def jobs_of(results: Path) -> list[dict]:
    """Every job with a `benchmark:` file: kind, wall s, start and end (Unix time), card, recorded phases."""
    jobs = []
    for bench_file in sorted((results / "benchmarks").rglob("*.tsv")):
        relative = bench_file.relative_to(results / "benchmarks").with_suffix("")
        with open(bench_file) as handle:
            header, *rows = [line.rstrip("\n").split("\t") for line in handle]
        wall = statistics.median(float(row[header.index("s")]) for row in rows)
        end = bench_file.stat().st_mtime
        kind = relative.parts[0] if len(relative.parts) > 1 else relative.name
        if kind == "profile":  # two rules share the folder: profile_torch, profile_nsys
            kind = f"profile_{relative.name.split('_', 1)[0]}"
        job = {"kind": kind, "wall_s": wall, "start": end - wall, "end": end, "card": None, "phases": None}
        log_file = results / "logs" / relative.with_suffix(".log")
        if log_file.is_file():
            for line in log_file.read_text(errors="replace").splitlines():
                placed = PLACED.match(line)
                if placed:
                    job["card"] = placed.group(2)
                    break
        cell = CELL_NAME.match(relative.name)
        if kind == "bench" and cell:
            result_file = results / "bench" / cell["engine"] / cell["precision"] / (
                f"bs{cell['batch_size']}_seq{cell['seq_len']}_{cell['padding']}.json")
            if result_file.is_file():
                job["phases"] = json.loads(result_file.read_text()).get("phases_s")
        jobs.append(job)
    return jobs


def overhead_s(job: dict) -> float:
    """Wall time outside the timed iterations and the first call (compilation)."""
    phases = job["phases"] or {}
    return job["wall_s"] - (phases.get("timed") or 0.0) - (phases.get("first_call") or 0.0)


def median(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):8.2f}" if values else "       -"


def print_tables(jobs: list[dict], wall_s: float | None, utilisation: dict[str, list[int]]) -> None:
    if not jobs:
        print("no jobs with benchmark files")
        return
    first, last = min(j["start"] for j in jobs), max(j["end"] for j in jobs)
    span = wall_s or (last - first)
    print(f"sweep wall time: {span:.1f} s" + ("" if wall_s else " (first job start to last job end)")
          + f"; {len(jobs)} jobs, {sum(j['wall_s'] for j in jobs):.1f} job-seconds")
    print(f"\n{'job kind':<20} {'jobs':>4} {'wall s':>8} {'overhead':>8}   (medians; overhead = wall - timed - first call)")
    kinds = sorted({j["kind"] for j in jobs}, key=lambda k: -sum(j["wall_s"] for j in jobs if j["kind"] == k))
    for kind in kinds:
        group = [j for j in jobs if j["kind"] == kind]
        print(f"{kind:<20} {len(group):>4} {median(j['wall_s'] for j in group)} {median(map(overhead_s, group))}")
    cells = [j for j in jobs if j["phases"]]
    if cells:
        print(f"\nbenchmark cells ({len(cells)}), median seconds per phase of a job's life:")
        for phase in PHASES:
            print(f"  {phase:<14}{median(j['phases'].get(phase) for j in cells)}")
        print(f"  {'after':<14}{median(j['wall_s'] - sum(v or 0 for v in j['phases'].values()) for j in cells)}")
    cards = sorted({j["card"] for j in jobs if j["card"]})
    print("\nGPUs" + ("" if cards or utilisation else ": no job was placed on a GPU"))
    for card in cards:
        spans = sorted((j["start"], j["end"]) for j in jobs if j["card"] == card)
        held, reach = 0.0, first
        for start, end in spans:  # union of the jobs' spans on this card
            held += max(0.0, end - max(start, reach))
            reach = max(reach, end)
        kernels = utilisation.get(card)
        print(f"  {card}: held by a job {held / span:.0%} of the sweep ({len(spans)} jobs)"
              + (f", kernels running {statistics.mean(kernels):.0f}% (NVML)" if kernels else ""))
    for card, samples in utilisation.items():
        if card not in cards:
            print(f"  {card}: no job placed on it, kernels running {statistics.mean(samples):.0f}% (NVML)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configfile", nargs="+", default=[str(REPO / "config.yaml"),
                                                            str(REPO / "tests" / "config.test.yaml")])
    parser.add_argument("--cores", default="all", help="as snakemake's --cores (default: all)")
    parser.add_argument("--gpus", type=int, help="--resources gpu=N (default: the GPUs NVML finds)")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (run again to resume)")
    parser.add_argument("--time-limit", type=float, help="stop the sweep after this many seconds; the same "
                        "command resumes it, and the wall times of all its runs are summed")
    parser.add_argument("--rerun-bench", action="store_true", help="then time a rerun after rm -r results/bench")
    parser.add_argument("--noop", action="store_true", help="then time a no-op snakemake -n (best of 5)")
    parser.add_argument("--analyse", type=Path, help="only print the tables of this existing run folder")
    parser.add_argument("snakemake_args", nargs="*", help="after `--`: passed to every snakemake run")
    args = parser.parse_args()
    extra = args.snakemake_args
    print(f"machine: {platform.node()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"{datetime.now().isoformat(timespec='seconds')}")
    if args.analyse:
        print_tables(jobs_of(args.analyse / "results"), None, {})
        return
    configfiles = [str(Path(f).resolve()) for f in args.configfile]
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="inferbench-harness-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # the runs of one resumed sweep: their wall times and GPU samples add up
    ledger_file = workdir / "harness_runs.json"
    ledger = json.loads(ledger_file.read_text()) if ledger_file.is_file() else {"runs_s": [], "samples": {}}
    print(f"run folder: {workdir}; configs: {' '.join(configfiles)}; --cores {args.cores}"
          + (f" --resources gpu={args.gpus}" if args.gpus is not None else ""))
    with Utilisation() as watched:
        wall, finished = snakemake(workdir, configfiles, args.cores, args.gpus, *extra, time_limit_s=args.time_limit,
                                   log=workdir / f"harness_run{len(ledger['runs_s']) + 1}.log")
    ledger["runs_s"].append(wall)
    for card, samples in watched.samples.items():
        ledger["samples"].setdefault(card, []).extend(samples)
    ledger_file.write_text(json.dumps(ledger))
    runs = ledger["runs_s"]
    if not finished:
        print(f"stopped after {wall:.1f} s (run {len(runs)}, {sum(runs):.1f} s so far): run the same command to resume")
        return
    print(f"sweep finished in {len(runs)} run(s): " + " + ".join(f"{r:.1f}" for r in runs) + " s")
    print_tables(jobs_of(workdir / "results"), sum(runs), ledger["samples"])
    if args.rerun_bench:
        shutil.rmtree(workdir / "results" / "bench")
        rerun, done = snakemake(workdir, configfiles, args.cores, args.gpus, *extra, time_limit_s=args.time_limit,
                                log=workdir / "harness_rerun_bench.log")
        print(f"\nrerun after rm -r results/bench: {rerun:.1f} s" + ("" if done else " (stopped at the time limit)"))
    if args.noop:
        noop = min(snakemake(workdir, configfiles, args.cores, args.gpus, *extra, "-n")[0] for _ in range(5))
        print(f"no-op snakemake -n on completed results (best of 5): {noop:.2f} s (target <= 3 s)")


if __name__ == "__main__":
    main()
