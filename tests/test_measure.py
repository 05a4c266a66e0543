"""The timing loop on fake engines whose call time is known: warm-up until steady, windows, the cap."""
from types import SimpleNamespace

import pytest

from conftest import FAST_MEASUREMENT
from workflow_scripts import measure

WARMUP = {**FAST_MEASUREMENT, "warmup_seconds": 0.05, "stable_windows": 3, "stable_tolerance": 0.2,
          "warmup_max_seconds": 1.0, "window_seconds": 0.01, "min_window_iters": 2}


class ScriptedEngine:
    """Call i takes `durations_ms[i]` ms (the last value forever after) on a fake clock that the timing loop
    reads (so a busy test machine cannot change the outcome), and records the batch it saw."""

    def __init__(self, durations_ms, monkeypatch):
        self.durations_ms, self.seen, self.now = list(durations_ms), [], 0.0
        monkeypatch.setattr(measure, "time", SimpleNamespace(perf_counter=lambda: self.now))

    def __call__(self, batch):
        self.seen.append(batch["shape"])
        self.now += self.durations_ms[min(len(self.seen) - 1, len(self.durations_ms) - 1)] / 1000


def test_warm_up_runs_every_shape_then_waits_until_windows_agree(monkeypatch):
    # calls that speed up (caches, clocks, lazy initialisation) until they settle at 2 ms
    engine = ScriptedEngine([40, 30, 20, 15, 10, 8, 6, 4, 3, 2], monkeypatch)
    batches = [{"shape": s} for s in (32, 17, 25)]
    warmup = measure.warm_up(engine, batches, "cpu", WARMUP)
    assert engine.seen[:3] == [32, 17, 25]
    assert warmup["steady"] and warmup["seconds"] >= WARMUP["warmup_seconds"]
    last = warmup["window_p50_ms"][-3:]
    assert last == pytest.approx([2, 2, 2])  # steady at the fast level, not while speeding up
    assert warmup["windows"] == len(warmup["window_p50_ms"]) >= 4


def test_an_engine_that_never_settles_is_measured_after_the_cap_and_flagged(monkeypatch):
    # levels that alternate every few calls, as a host switching regimes: windows never agree
    engine = ScriptedEngine([1 if (i // 3) % 2 else 6 for i in range(100000)], monkeypatch)
    settings = {**WARMUP, "stable_tolerance": 0.01, "warmup_max_seconds": 0.3}
    warmup = measure.warm_up(engine, [{"shape": 1}], "cpu", settings)
    assert not warmup["steady"]
    assert 0.3 <= warmup["seconds"] == engine.now < 0.32


def test_timed_windows_are_repeats_of_windows_of_calls(monkeypatch):
    engine = ScriptedEngine([1], monkeypatch)
    calls_after = []
    timed = measure.time_windows(engine, [{"shape": 1}], "cpu", {**WARMUP, "windows": 4, "repeats": 3},
                                 lambda window: calls_after.append((len(engine.seen), len(window["wall_ms"]))))
    assert [len(repeat) for repeat in timed] == [4, 4, 4]
    # each window: 10 ms of 1 ms calls
    assert all(w["wall_ms"] == pytest.approx([1.0] * 10) and w["gpu_ms"] is None for r in timed for w in r)
    assert len(calls_after) == 12 and calls_after[-1] == (len(engine.seen), 10)  # each with its window


def test_progress_shows_the_start_a_line_per_interval_and_the_end(caplog):
    """A long measurement prints a line when it starts, then at most one per interval while steps remain,
    and one at the end; a short one only the first and the last."""
    from workflow_scripts.progress import Progress

    now = [0.0]
    progress = Progress("pair eager fp32 bs8 seq128 max_length vs eager fp32", 6, "round", interval_s=30,
                        clock=lambda: now[0])
    caplog.set_level("INFO", logger="progress")
    progress.start("both loaded")
    asked = []
    for seconds in (10, 20, 31, 45, 70, 95):  # the 3rd and 5th steps are 30 s after the last line; the 6th is the end
        now[0] = seconds
        progress.step(lambda: asked.append(now[0]) or f"speedup so far {now[0]:.0f}x")
    progress.finish("speedup 1.000x [0.990-1.010]")
    assert caplog.messages == ["pair eager fp32 bs8 seq128 max_length vs eager fp32: both loaded",
                               "pair eager fp32 bs8 seq128 max_length vs eager fp32: 3/6 rounds, speedup so far 31x",
                               "pair eager fp32 bs8 seq128 max_length vs eager fp32: 5/6 rounds, speedup so far 70x",
                               "pair eager fp32 bs8 seq128 max_length vs eager fp32: speedup 1.000x [0.990-1.010] "
                               "(6 rounds in 95 s)"]
    assert asked == [31, 70]  # the summary so far is computed only for the lines shown
    assert progress.shown


def test_a_quick_pass_over_all_rows_prints_nothing_and_a_slow_one_its_progress(caplog, monkeypatch):
    """The accuracy and reference passes: silent when quick, a line per interval and one at the end when slow."""
    from types import SimpleNamespace

    import torch

    from workflow_scripts import progress, reference

    class Engine:
        max_batch_size, input_device = None, None

        def run(self, input_ids, attention_mask):
            now[0] += 20.0  # seconds per batch
            return torch.zeros(input_ids.shape[0], 2)

    ids = torch.ones(10, 4, dtype=torch.int64)
    tokens = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    caplog.set_level("INFO", logger="progress")
    now = [0.0]
    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=lambda: now[0]))
    logits = reference.run_all_rows(Engine(), tokens, 4, "max_length", "cpu", "accuracy eager fp32 seq4 max_length")
    assert logits.shape == (10, 2)
    assert caplog.messages == ["accuracy eager fp32 seq4 max_length: 2/3 batches, 8 of 10 rows",
                               "accuracy eager fp32 seq4 max_length: all 10 rows (3 batches in 60 s)"]
    caplog.clear()
    Engine.run = lambda self, input_ids, attention_mask: torch.zeros(input_ids.shape[0], 2)  # quick
    reference.run_all_rows(Engine(), tokens, 4, "max_length", "cpu", "reference seq4")
    assert caplog.messages == []


def test_a_slow_single_call_is_named_while_it_runs_and_a_quick_one_not(caplog):
    """A first call that compiles: a line once it has run quiet_s, then one per interval, none after it ends;
    an eager first call (quick) prints nothing."""
    import time

    from workflow_scripts.progress import while_slow

    caplog.set_level("INFO", logger="progress")
    with while_slow("bench compile-max-autotune fp16 bs1 seq128 max_length", "first call", quiet_s=0.1,
                    interval_s=0.2):
        time.sleep(0.45)  # lines near 0.1 and 0.3 s
    time.sleep(0.3)  # the timer has stopped with the block
    assert 2 <= len(caplog.messages) <= 3
    assert caplog.messages[0] == "bench compile-max-autotune fp16 bs1 seq128 max_length: first call, running for 0 s"
    caplog.clear()
    with while_slow("bench eager fp32 bs1 seq128 max_length", "first call", quiet_s=0.2):
        pass
    time.sleep(0.3)
    assert caplog.messages == []


def test_profile_jobs_and_load_levels_print_one_line_each(caplog, monkeypatch):
    """A profile job's start and end (wall ms per iteration, or its status and the reason's first line); a load
    level's concurrency, requests/s and p50, or why it has none."""
    from types import SimpleNamespace

    from workflow_scripts import load_sweep, progress

    now = [100.0]
    monkeypatch.setattr(progress, "time", SimpleNamespace(monotonic=lambda: now[0]))
    caplog.set_level("INFO", logger="progress")
    started = progress.job_started("profile torch eager fp32 bs1 seq128 max_length", "20 iterations")
    now[0] += 42
    progress.job_ended("profile torch eager fp32 bs1 seq128 max_length",
                       {"status": "ok", "reason": None, "profile": {"wall_ms_per_iter": 12.3456}}, started)
    # skipped before it started (a CPU cell under Nsight Systems): its one line, the skip and its reason
    progress.job_ended("profile nsys eager fp32 bs1 seq128 max_length",
                       {"status": "skipped", "reason": "no GPU\nmore", "profile": None}, None)
    assert caplog.messages == ["profile torch eager fp32 bs1 seq128 max_length: 20 iterations",
                               "profile torch eager fp32 bs1 seq128 max_length: ok, 12.346 ms per iteration (42 s)",
                               "profile nsys eager fp32 bs1 seq128 max_length: skipped: no GPU"]
    level = {"status": "ok", "reason": None, "load_client": {"name": "python", "clients": 8},
             "throughput_samples_per_s": 412.34, "latency": {"wall_ms": {"p50": 19.0214}}}
    assert load_sweep._level_line(level) == "concurrency 8 (python client): 412.3 requests/s, p50 19.021 ms"
    failed = {**level, "status": "failed", "reason": "3 of 90 requests failed", "latency": None}
    assert load_sweep._level_line(failed) == "concurrency 8 (python client): failed: 3 of 90 requests failed"


def test_counts_read_in_the_singular_for_one_on_the_console_and_in_the_report(caplog):
    """`1 call`, not `1 calls`: the report's timing rule (a CPU run times one call per window), a pair's
    warm-up line, a measurement that ended after one step."""
    from types import SimpleNamespace

    from workflow_scripts.pair import warmup_text
    from workflow_scripts.progress import Progress
    from workflow_scripts.report.measurement import timing_rule
    from workflow_scripts.wording import count

    assert [count(1, "call"), count(2, "call"), count(5.0, "window"), count(1.0, "batch"), count(0, "batch")] == [
        "1 call", "2 calls", "5 windows", "1 batch", "0 batches"]
    row = SimpleNamespace(measurement_warmup_seconds=0.5, measurement_stable_windows=3.0,
                          measurement_stable_tolerance=0.05, measurement_warmup_max_seconds=20.0,
                          measurement_repeats=1.0, measurement_windows=3.0, measurement_window_seconds=0.2,
                          measurement_min_window_iters=1.0)
    assert "then 1 repeat × 3 windows, each at least 0.2 s and 1 call; p50" in timing_rule(row)
    assert warmup_text({"seconds": 44.9, "windows": 1, "steady": False}) == (
        "warm-up not steady after 44.9 s (1 window): timed anyway, the pair is flagged")
    assert warmup_text({"seconds": 1.23, "windows": 4, "steady": True}) == "warm in 1.2 s (4 windows)"
    caplog.set_level("INFO", logger="progress")
    now = [0.0]
    progress = Progress("bench eager fp32 bs8 seq128 max_length", 1, "window", clock=lambda: now[0])
    progress.step(lambda: "")
    now[0] = 3.0
    progress.finish("p50 812.402 ms")
    assert caplog.messages == ["bench eager fp32 bs8 seq128 max_length: p50 812.402 ms (1 window in 3 s)"]


def test_a_load_level_that_completes_no_request_says_so_not_zero_of_zero_failed(monkeypatch):
    from workflow_scripts import load_sweep

    class SlowServer:  # a model slower than the window: the server took one request, none came back in time
        def begin_window(self):
            pass

        def end_window(self):
            return {"requests": 1, "executions": 1}

        def request_target(self):
            return "localhost:1"

    monkeypatch.setattr(load_sweep, "closed_loop", lambda *args: ([], 0))
    level = load_sweep._python_level(SlowServer(), None, None, 1, {"seconds": 2, "warmup_seconds": 0.5}, "out.json")
    assert level["status"] == "failed"
    assert level["reason"] == ("no request completed within the 2 s window (the server counted 1): raise "
                               "triton.load.seconds")
