"""The host-state monitor: steal time and load from /proc, GPU clocks and throttling from a stand-in NVML."""
import os
import time
from types import SimpleNamespace

import pytest

from workflow_scripts import host_state


class FakeNVML:
    """The few NVML calls the monitor makes, answering from scripted samples."""
    NVML_CLOCK_SM, NVML_CLOCK_MEM = 1, 2
    NVMLError = RuntimeError

    def __init__(self, samples, processes):
        self.samples, self.processes, self.index = samples, processes, -1

    def nvmlDeviceGetClockInfo(self, handle, clock):
        self.index += clock == self.NVML_CLOCK_SM  # each sample starts with the SM clock
        return self.samples[self.index]["sm" if clock == self.NVML_CLOCK_SM else "mem"]

    def nvmlDeviceGetPowerUsage(self, handle):
        return self.samples[self.index]["mw"]

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self.samples[self.index]["reasons"]

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return self.processes

    def nvmlShutdown(self):
        pass


def test_on_cpu_the_gpu_part_is_empty_with_the_reason_and_steal_is_measured(monkeypatch):
    times = iter([(100, 10_000), (150, 11_000), (400, 12_000), (400, 12_000)])
    monkeypatch.setattr(host_state, "cpu_times", lambda: next(times))
    host = host_state.HostMonitor("cpu")
    host.sample()  # steal 50 of 1000 jiffies
    host.sample()  # steal 250 of 1000
    summary = host.summary()
    assert summary["gpu"] is None and summary["gpu_reason"] == "the cell runs on CPU"
    assert summary["cpu_steal_share"] == pytest.approx(300 / 2000)
    assert summary["cpu_steal_share_max_window"] == pytest.approx(0.25)
    assert summary["steal_heavy"] and not summary["throttled"]
    assert summary["samples"] == 2 and len(summary["load_average_1m"]) == 2


def test_this_machine_reads_real_proc_files():
    steal, total = host_state.cpu_times()
    assert 0 <= steal <= total and host_state.load_average() >= 0
    with host_state.monitor("cpu") as host:
        time.sleep(0.1)  # /proc/stat counts in ticks of 10 ms
        host.sample()
        summary = host.summary()
    assert 0 <= summary["cpu_steal_share"] < 1


def test_gpu_clocks_reasons_power_and_other_processes_are_summarised():
    samples = [{"sm": 1980, "mem": 2619, "mw": 300_000, "reasons": 0x0},
               {"sm": 1380, "mem": 2619, "mw": 700_000, "reasons": 0x4},   # power cap
               {"sm": 1815, "mem": 2619, "mw": 650_000, "reasons": 0x1}]   # idle: not throttling
    processes = [SimpleNamespace(pid=os.getpid(), usedGpuMemory=2**30),
                 SimpleNamespace(pid=999_999_999, usedGpuMemory=512 * 2**20)]
    host = host_state.HostMonitor("cpu")
    host.nvml, host.handle = FakeNVML(samples, processes), "card"
    for _ in samples:
        host.sample()
    summary = host.summary()
    gpu = summary["gpu"]
    assert gpu["sm_clock_mhz"] == {"min": 1380, "median": 1815, "max": 1980}
    assert gpu["power_w"] == {"min": 300.0, "median": 650.0, "max": 700.0}
    # the power cap at full load is context (the card working as designed), not throttling
    assert gpu["throttle_reasons"] == [] and gpu["clock_event_reasons"] == ["gpu_idle", "sw_power_cap"]
    assert not summary["throttled"] and summary["gpu_reason"] is None
    assert gpu["other_processes"] == [{"pid": 999_999_999, "name": None, "used_mb": 512.0}]


@pytest.mark.parametrize("reasons,flagged", [(0x4, []), (0x4 | 0x20, ["sw_thermal_slowdown"]),
                                             (0x40, ["hw_thermal_slowdown"]), (0x8, ["hw_slowdown"])])
def test_only_thermal_or_hardware_slowdowns_flag_a_pair_unstable(reasons, flagged):
    """A batch-256 pair whose card sat at its power limit (sw_power_cap) is a stable comparison; a thermal or
    hardware slowdown makes it unstable, naming the reason."""
    from workflow_scripts.pair import unstable_reasons

    host = host_state.HostMonitor("cpu")
    host.nvml, host.handle = FakeNVML([{"sm": 1500, "mem": 2619, "mw": 700_000, "reasons": reasons}], []), "card"
    host.sample()
    summary = host.summary()
    assert summary["gpu"]["throttle_reasons"] == flagged and summary["throttled"] == bool(flagged)
    assert ("sw_power_cap" in summary["gpu"]["clock_event_reasons"]) == bool(reasons & 0x4)
    pair = {"speedup": 10.0, "speedup_ci95": [9.99, 10.01], "ratio_regimes": None,
            "warmup": {"engine": {"steady": True, "seconds": 1.0}}}
    verdict = unstable_reasons(pair, {**summary, "steal_heavy": False}, max_ci_width=0.05)
    assert verdict == ([f"GPU throttled ({', '.join(flagged)})"] if flagged else [])


class FakeEnergyNVML(FakeNVML):
    """A card whose total-energy counter (mJ) advances by 300 J per sample."""

    def __init__(self):
        super().__init__([{"sm": 1980, "mem": 2619, "mw": 300_000, "reasons": 0}] * 4, [])
        self.energy_mj = 5_000_000

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        reading, self.energy_mj = self.energy_mj, self.energy_mj + 300_000
        return reading


def test_a_cuda_cell_reads_the_energy_counter_over_its_timed_windows(monkeypatch):
    """A CUDA cell with a stand-in NVML: energy from the counter's start to its last sample, then per
    inference in the aggregated row; positive joules, seconds and power."""
    from workflow_scripts.aggregate import energy_columns

    fake = FakeEnergyNVML()

    def open_fake(monitor):
        monitor.nvml, monitor.handle = fake, "card"

    monkeypatch.setattr(host_state.HostMonitor, "_open_nvml", open_fake)
    host = host_state.HostMonitor("cuda")
    for _ in range(3):
        time.sleep(0.01)
        host.sample()
    summary = host.summary()
    energy = summary["energy"]
    assert energy["joules"] == pytest.approx(900.0) and summary["energy_reason"] is None
    assert energy["seconds"] > 0.02 and energy["average_power_w"] == pytest.approx(900.0 / energy["seconds"])
    row = energy_columns(summary, calls=300, batch_size=10)  # 3,000 inferences
    assert row["energy_j_per_1k_inferences"] == pytest.approx(300.0)
    assert row["average_power_w"] > 0 and row["energy_reason"] is None


def test_energy_is_empty_with_the_reason_on_cpu_or_without_the_counter(monkeypatch):
    from workflow_scripts.aggregate import energy_columns

    summary = host_state.HostMonitor("cpu").summary()
    assert summary["energy"] is None and summary["energy_reason"] == "the cell runs on CPU"
    assert energy_columns(summary, 100, 4) == {"energy_j_per_1k_inferences": None, "average_power_w": None,
                                               "energy_reason": "the cell runs on CPU"}
    fake = FakeEnergyNVML()

    def not_supported(handle):
        raise fake.NVMLError("Not Supported")

    fake.nvmlDeviceGetTotalEnergyConsumption = not_supported
    monkeypatch.setattr(host_state.HostMonitor, "_open_nvml",
                        lambda monitor: setattr(monitor, "nvml", fake) or setattr(monitor, "handle", "card"))
    host = host_state.HostMonitor("cuda")
    host.sample()
    summary = host.summary()
    assert summary["energy"] is None
    assert summary["energy_reason"] == "NVML total-energy counter unavailable: Not Supported"
    assert summary["gpu"] is not None  # clocks and power are still sampled
    assert energy_columns(None, 100, 4)["energy_reason"] == "no host state recorded over the timed windows"
