"""Where each job of a local run runs: a GPU of its own and a share of the cores near that GPU.

Snakemake counts what a local run may use: the `gpu` resource (one per job that runs the model; the total is
the node's GPU count) and cores (`threads:`). It does not say *which* card or cores a job gets. So the
Snakefile plans one slot per card once per run: the card (its `CUDA_VISIBLE_DEVICES` value) and a share of the
cores, taken first from the cores NVML names as the card's CPU affinity (its NUMA node); the cores left over
are the CPU-only jobs'. A job that runs the model takes the first free slot with an exclusive `flock` on the
slot's lock file and holds it until the process ends (the kernel drops it even on SIGKILL). As Snakemake never
runs more such jobs than there are slots, every one finds a free slot: never two of them on one card.

The plan reaches the jobs through the environment variable `PLAN_VARIABLE`, which local jobs inherit from
Snakemake. Cluster runs set none: there the scheduler gives each job its card and cores. Without a plan (CPU
runs, the command line, cluster jobs) `place_job` does nothing.

Parse time (`plan`, `found_cards`) needs only NVML; `place_job` must run before the job initialises CUDA.
"""

import fcntl
import hashlib
import json
import logging
import math
import os
import sys
import tempfile
import time

from workflow_scripts import wording

PLAN_VARIABLE = "INFERBENCH_PLACEMENT"
log = logging.getLogger("placement")
_held_slot_files = []  # open lock files: the slot is the job's for as long as the process lives
_placed_at: list[float] = []  # when this process took its slot (Unix time)


class PlacementError(ValueError):
    """The configured GPU placement cannot be honoured on this machine; the message says why and what to set."""
    pass


def found_cards() -> list[dict]:
    """The NVIDIA GPUs this process may use, as NVML lists them (honouring a `CUDA_VISIBLE_DEVICES` of
    indices or UUIDs that Snakemake itself was started with): [{"id": "GPU-<uuid>", "name": str,
    "cpus": [core, ...]}]. `cpus` is the card's CPU affinity (empty when NVML does not say). [] without a
    driver or NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver, no library: no GPU
        return []
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            chosen = []
            for entry in filter(None, (part.strip() for part in visible.split(","))):
                # an index counts in PCI bus order, as NVML does (jobs get CUDA_DEVICE_ORDER=PCI_BUS_ID)
                chosen.append(handles[int(entry)] if entry.isdigit() else pynvml.nvmlDeviceGetHandleByUUID(entry))
            handles = chosen
        words = math.ceil((os.cpu_count() or 1) / 64)
        cards = []
        for handle in handles:
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            try:
                mask = pynvml.nvmlDeviceGetCpuAffinity(handle, words)
                cpus = [64 * word + bit for word in range(words) for bit in range(64) if mask[word] >> bit & 1]
            except pynvml.NVMLError:  # not supported (some virtual machines): any core is as near
                cpus = []
            cards.append({"id": uuid if isinstance(uuid, str) else uuid.decode(),
                          "name": str(pynvml.nvmlDeviceGetName(handle)), "cpus": cpus})
        return cards
    finally:
        pynvml.nvmlShutdown()


def plan(cores: int, gpus: int | None, device: str, run_key: str, cards: list[dict] | None = None,
         available: list[int] | None = None) -> dict | None:
    """One slot per card for a local run, or None when jobs need no placement.

    cores: the cores Snakemake was given (`--cores`); gpus: `--resources gpu=N` if given, else None (then the
    cards NVML finds, when the run's `device` is cuda); run_key: names the lock files of cards without a UUID
    (no GPU here: `gpu=N` then makes N stand-in cards "0".."N-1", for tests); cards: `found_cards()`;
    available: the cores this process may run on (its affinity). A card with a UUID has one lock file per user
    on the node, so two runs of one user on one node never put two jobs on one card either.

    Returns {"slots": [{"device": CUDA_VISIBLE_DEVICES value, "cores": [int], "lock": path}],
    "threads_per_slot": int, "cpu_only_cores": [int]}. Each slot gets the same share of `cores`, at least one;
    one core (more when the share does not divide evenly) stays with the CPU-only jobs when cores outnumber cards.
    Raises PlacementError when `gpus` asks for more cards than NVML sees.
    """
    cards = found_cards() if cards is None else cards
    available = sorted(os.sched_getaffinity(0)) if available is None else sorted(available)
    if gpus is None:
        count = len(cards) if device == "cuda" else 0
    elif cards and gpus > len(cards):
        raise PlacementError(f"--resources gpu={gpus}, but this node has {wording.count(len(cards), 'GPU')} "
                             f"({', '.join(card['id'] for card in cards)})")
    else:
        count = gpus
    budget = max(1, min(cores, len(available)))
    count = min(count, budget)  # every slot needs a core of its own
    if count == 0:
        return None
    if not cards:
        cards = [{"id": str(index), "cpus": []} for index in range(count)]
    share = (budget - 1) // count if budget > count else 1
    free = list(available[:budget]) if not any(card["cpus"] for card in cards) else list(available)
    slots = []
    for card in cards[:count]:
        near = [core for core in free if core in set(card["cpus"])]
        taken = (near + [core for core in free if core not in set(near)])[:share]
        free = [core for core in free if core not in set(taken)]
        lock_name = card["id"] if card["id"].startswith(("GPU-", "MIG-")) else f"{run_key}-{card['id']}"
        slots.append({"device": card["id"], "cores": sorted(taken),
                      "lock": os.path.join(tempfile.gettempdir(), f"inferbench-gpu-{os.getuid()}-{lock_name}.lock")})
    return {"slots": slots, "threads_per_slot": share, "cpu_only_cores": sorted(free[:budget - count * share])}


def run_key(workdir: str) -> str:
    """A short name for the run's working directory (lock files of stand-in cards are per run)."""
    return hashlib.sha256(os.path.abspath(workdir).encode()).hexdigest()[:12]


def place_job(gpus: int, wait_log_s: float = 60.0) -> dict | None:
    """Put this job where the run's plan says, before anything initialises CUDA.

    gpus: the job's `gpu` resource. A model job (gpus >= 1) waits for a free slot, locks it for the rest of the
    process, sets `CUDA_VISIBLE_DEVICES` to its card (inherited by servers and clients it starts) and runs
    on the slot's cores; a CPU-only job runs on the cores no slot has. Returns the slot (or None) and logs it;
    without a plan in the environment, returns None and changes nothing.
    """
    text = os.environ.get(PLAN_VARIABLE)
    if not text:
        return None
    placement = json.loads(text)
    slot = None
    if gpus:
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():  # too late: CUDA keeps the cards it saw
            raise PlacementError("CUDA was initialised before the job took its GPU slot; place the job first")
        slot = _lease(placement["slots"], wait_log_s)
        os.environ["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # an index means what NVML and nvidia-smi call it
        os.environ["CUDA_VISIBLE_DEVICES"] = slot["device"]
        cores = slot["cores"]
    else:
        cores = placement["cpu_only_cores"]
    if cores:
        os.sched_setaffinity(0, cores)
    log.info("placed on %s, cores %s", f"GPU {slot['device']}" if slot else "no GPU",
             compact_cores(sorted(os.sched_getaffinity(0))))
    return slot


def placed_unix() -> float | None:
    """When this process took its GPU slot (Unix time; after the slot's previous job ended), or None."""
    return _placed_at[-1] if _placed_at else None


def _lease(slots: list[dict], wait_log_s: float) -> dict:
    started = last_note = time.monotonic()
    while True:
        for slot in slots:
            handle = open(slot["lock"], "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held_slot_files.append(handle)
            _placed_at.append(time.time())
            return slot
        # Snakemake runs no more model jobs than slots: only another run on this node holds them all
        if time.monotonic() - last_note >= wait_log_s:
            last_note = time.monotonic()
            log.warning("all %d GPU slots busy for %.0f s (another run on this node?); waiting",
                        len(slots), last_note - started)
        time.sleep(0.2)


def compact_cores(cores: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (as taskset and /proc name core lists)."""
    ranges = []
    for core in sorted(cores):
        if ranges and core == ranges[-1][1] + 1:
            ranges[-1][1] = core
        else:
            ranges.append([core, core])
    return ",".join(f"{a}-{b}" if b > a else f"{a}" for a, b in ranges)


def count_cores(cores: str) -> int:
    """'0-2,5' -> 4: how many cores a compact_cores list names. ValueError on anything else."""
    count = 0
    for part in cores.split(","):
        first, _, last = part.partition("-")
        count += int(last or first) - int(first) + 1
    return count


def place_snakemake_job(smk) -> dict | None:
    """`place_job` for a Snakemake job, by its `gpu` resource."""
    return place_job(int(getattr(smk.resources, "gpu", 0) or 0))
