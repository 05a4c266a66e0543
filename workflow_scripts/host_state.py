"""What the host was doing while a cell or pair was timed: GPU clocks, clock-event reasons, power, energy and
other processes on the GPU (NVML), CPU steal time and load average (/proc/stat, /proc/loadavg).

Energy is the difference of NVML's total-energy counter (millijoules since the driver loaded,
nvmlDeviceGetTotalEnergyConsumption; Volta and later) between the monitor's start (just before the first
timed window) and its last sample (just after the last one): the whole card's energy over the timed period.

Sampled between timed windows (never inside one), so the monitor adds no thread and no work to the timed
calls. On CPU, or where NVML is missing, the GPU part is None with the reason.
"""

import contextlib
import os
import time
from pathlib import Path

import numpy as np

# Clock-event reasons that flag a measurement (NVML's nvmlClocksEventReason* bits): thermal or hardware
# slowdowns, which a healthy card in a cooled rack does not need, so the numbers describe a sick or hot machine.
THROTTLE_REASONS = {
    0x8: "hw_slowdown",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
}
# Recorded as context, never flagged: the card working as designed. sw_power_cap is the driver holding the
# board at its power limit, which a large batch's sustained tensor-core load reaches on every H200 (SM clock
# 1380-1815 MHz at bf16 batch 256); idle, application clocks, sync boost and display are settings or idleness.
OTHER_REASONS = {0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap", 0x10: "sync_boost",
                 0x100: "display_clock_setting"}
# Share of CPU time the hypervisor gave to other guests above which a measurement is flagged: a launch-bound
# GPU cell's host thread loses that share of its time slices.
NOTICEABLE_STEAL = 0.02


def cpu_times() -> tuple[int, int] | None:
    """(steal, total) jiffies of all CPUs since boot, from /proc/stat; None where there is no /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return None
    values = [int(v) for v in fields] + [0] * (8 - len(fields))
    return values[7], sum(values)


def load_average() -> float | None:
    """The 1-minute load average (runnable and uninterruptible tasks), from /proc/loadavg."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def spread(values) -> dict | None:
    """{"min", "median", "max"} of the sampled values, or None without samples."""
    if not values:
        return None
    return {"min": float(np.min(values)), "median": float(np.median(values)), "max": float(np.max(values))}


class HostMonitor:
    """Samples the host after each timed window; `summary()` describes the whole timed period.

    `device` is "cuda" (the current torch device's card, found through its UUID) or "cpu".
    """

    def __init__(self, device: str):
        self.nvml = None
        self.handle = None
        self.gpu_reason = None
        self.gpu_samples: list[dict] = []
        self.window_steal: list[float] = []
        self.energy_reason = None
        if device != "cuda":
            self.gpu_reason = self.energy_reason = "the cell runs on CPU"
        else:
            self._open_nvml()
        # (millijoules, perf_counter seconds) at the start and at the latest sample; None: no counter
        self.energy_start = self.energy_last = self._energy_reading()
        self.start_times = self.last_times = cpu_times()
        self.load_start = load_average()

    def _open_nvml(self) -> None:
        try:
            import pynvml

            from workflow_scripts.environment import gpu_uuid

            pynvml.nvmlInit()
            self.nvml = pynvml
            uuid = gpu_uuid()
            self.handle = (pynvml.nvmlDeviceGetHandleByUUID(uuid) if uuid
                           else pynvml.nvmlDeviceGetHandleByIndex(0))
        except Exception as error:  # no NVML library or driver: the timings stand without it
            self.gpu_reason = self.energy_reason = f"NVML unavailable: {type(error).__name__}: {error}"
            self.close()

    def _energy_reading(self) -> tuple[int, float] | None:
        """(the card's total-energy counter in mJ, time.perf_counter()), or None with energy_reason set."""
        if self.handle is None:
            return None
        try:
            return self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle), time.perf_counter()
        except self.nvml.NVMLError as error:  # e.g. NotSupported before Volta
            self.energy_reason = f"NVML total-energy counter unavailable: {error}"
            return None

    def sample(self) -> None:
        """One sample of clocks, reasons and power, and the steal share since the previous sample."""
        times = cpu_times()
        if times and self.last_times and times[1] > self.last_times[1]:
            self.window_steal.append((times[0] - self.last_times[0]) / (times[1] - self.last_times[1]))
        self.last_times = times
        if self.handle is None:
            return
        if self.energy_start is not None:
            self.energy_last = self._energy_reading() or self.energy_last
        nvml = self.nvml
        try:
            self.gpu_samples.append({
                "sm_clock_mhz": nvml.nvmlDeviceGetClockInfo(self.handle, nvml.NVML_CLOCK_SM),
                "mem_clock_mhz": nvml.nvmlDeviceGetClockInfo(self.handle, nvml.NVML_CLOCK_MEM),
                "power_w": nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0,
                "reasons": int(nvml.nvmlDeviceGetCurrentClocksEventReasons(self.handle)),
            })
        except nvml.NVMLError as error:
            self.gpu_reason = f"NVML sampling failed: {error}"

    def other_gpu_processes(self) -> list[dict]:
        """Compute processes on this card other than this process and its children (e.g. its server)."""
        ours = {os.getpid()}
        found = []
        for process in self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle):
            if process.pid in ours or parent_pid(process.pid) == os.getpid():
                continue
            used = getattr(process, "usedGpuMemory", None)
            found.append({"pid": process.pid, "name": process_name(process.pid),
                          "used_mb": used / 2**20 if used else None})
        return found

    def energy(self) -> dict | None:
        """{"joules": the card's energy from the start to the last sample (J), "seconds": that period (s),
        "average_power_w": joules / seconds (W)}, or None (energy_reason says why)."""
        if self.energy_start is None or self.energy_last is self.energy_start:
            self.energy_reason = self.energy_reason or "no sample after the start"
            return None
        (start_mj, start_s), (end_mj, end_s) = self.energy_start, self.energy_last
        joules, seconds = (end_mj - start_mj) / 1000.0, end_s - start_s
        return {"joules": joules, "seconds": seconds, "average_power_w": joules / seconds if seconds > 0 else None}

    def summary(self) -> dict:
        """The timed period: {"gpu": {...} or None, "gpu_reason", "energy": energy() or None, "energy_reason",
        "cpu_steal_share", "cpu_steal_share_max_window", "load_average_1m": [start, end], "samples",
        "steal_heavy", "throttled"}. Shares are fractions of all CPU time; clocks in MHz, power in W. gpu's
        clock_event_reasons: every reason seen; throttle_reasons and `throttled`: only THROTTLE_REASONS."""
        end_times = cpu_times()
        steal = None
        if self.start_times and end_times and end_times[1] > self.start_times[1]:
            steal = (end_times[0] - self.start_times[0]) / (end_times[1] - self.start_times[1])
        gpu = None
        if self.handle is not None and self.gpu_samples:
            seen = 0
            for sample in self.gpu_samples:
                seen |= sample["reasons"]
            throttling = [name for bit, name in THROTTLE_REASONS.items() if seen & bit]
            try:
                others = self.other_gpu_processes()
            except self.nvml.NVMLError as error:
                others, self.gpu_reason = None, f"NVML process list failed: {error}"
            gpu = {
                "sm_clock_mhz": spread([s["sm_clock_mhz"] for s in self.gpu_samples]),
                "mem_clock_mhz": spread([s["mem_clock_mhz"] for s in self.gpu_samples]),
                "power_w": spread([s["power_w"] for s in self.gpu_samples]),
                "clock_event_reasons": throttling + [name for bit, name in OTHER_REASONS.items() if seen & bit],
                "throttle_reasons": throttling,
                "other_processes": others,
            }
        worst = max(self.window_steal) if self.window_steal else None
        energy = self.energy()
        return {
            "gpu": gpu,
            "gpu_reason": None if gpu else self.gpu_reason or "no sample was taken",
            "energy": energy,
            "energy_reason": None if energy else self.energy_reason,
            "cpu_steal_share": steal,
            "cpu_steal_share_max_window": worst,
            "load_average_1m": [self.load_start, load_average()],
            "samples": len(self.window_steal),
            "throttled": bool(gpu and gpu["throttle_reasons"]),
            "steal_heavy": steal is not None and steal > NOTICEABLE_STEAL,
        }

    def close(self) -> None:
        """Shut NVML down (idempotent); the monitor reads no GPU afterwards."""
        if self.nvml is not None:
            with contextlib.suppress(Exception):
                self.nvml.nvmlShutdown()
        self.nvml = self.handle = None


@contextlib.contextmanager
def monitor(device: str):
    """A HostMonitor for the timed period; NVML is shut down afterwards."""
    host = HostMonitor(device)
    try:
        yield host
    finally:
        host.close()


def parent_pid(pid: int) -> int | None:
    """The parent process id of `pid`, read from /proc (Linux); None when it cannot be read."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def process_name(pid: int) -> str | None:
    """The command name of `pid` (/proc/<pid>/comm, at most 15 characters); None when it cannot be read."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
