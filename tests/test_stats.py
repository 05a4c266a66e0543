import numpy as np
import pytest

from workflow_scripts import stats


def test_percentiles_and_moments_match_numpy():
    rng = np.random.default_rng(1)
    samples = rng.lognormal(mean=0.0, sigma=0.3, size=500)
    summary = stats.summarize(samples, batch_size=8, bootstrap_resamples=200)
    assert summary["n"] == 500
    assert summary["p50"] == pytest.approx(np.median(samples))
    assert summary["p99"] == pytest.approx(np.percentile(samples, 99))
    assert summary["mean"] == pytest.approx(samples.mean())
    assert summary["std"] == pytest.approx(samples.std(ddof=1))
    assert summary["min"] <= summary["p50"] <= summary["p90"] <= summary["p95"] <= summary["p99"] <= summary["max"]


def test_throughput_is_batch_over_mean_latency():
    summary = stats.summarize([2.0, 2.0, 4.0, 4.0], batch_size=16, bootstrap_resamples=100)
    assert summary["throughput_samples_per_s"] == pytest.approx(16 * 1000 / 3.0)


def test_bootstrap_interval_brackets_the_statistic_and_narrows_with_more_data():
    rng = np.random.default_rng(2)
    small = rng.normal(10, 1, size=30)
    large = rng.normal(10, 1, size=3000)
    low_s, high_s = stats.bootstrap_ci(small, np.median, 500)
    low_l, high_l = stats.bootstrap_ci(large, np.median, 500)
    assert low_s <= np.median(small) <= high_s
    assert low_l <= np.median(large) <= high_l
    assert (high_l - low_l) < (high_s - low_s)


def test_constant_samples_give_a_point_interval():
    assert stats.bootstrap_ci([3.0] * 10, np.mean, 100) == [3.0, 3.0]


def test_empty_samples_are_an_error():
    with pytest.raises(ValueError, match="no latency samples"):
        stats.summarize([], batch_size=1)


def test_coefficient_of_variation():
    assert stats.coefficient_of_variation([1.0]) == 0.0
    assert stats.coefficient_of_variation([1.0, 1.0, 1.0]) == 0.0
    assert stats.coefficient_of_variation([0.9, 1.0, 1.1]) == pytest.approx(0.1)


def test_gpu_cells_are_timed_on_one_core_and_cpu_cells_keep_their_threads():
    import os

    import torch

    from workflow_scripts.measure import pinned_to_one_core

    allowed, threads = os.sched_getaffinity(0), torch.get_num_threads()
    with pinned_to_one_core(True, "cuda") as core:  # only the host side is pinned: no GPU needed
        assert os.sched_getaffinity(0) == {core} and core in allowed and torch.get_num_threads() == 1
    assert os.sched_getaffinity(0) == allowed and torch.get_num_threads() == threads
    for enabled, device in ((True, "cpu"), (False, "cuda")):
        with pinned_to_one_core(enabled, device) as core:
            assert core is None and os.sched_getaffinity(0) == allowed


def windows_around(level, windows=4, iters=6, step=0.002):
    """`windows` windows of `iters` calls whose medians sit symmetrically around `level` ms."""
    offsets = np.linspace(-step, step, windows)
    return [[level + o + d for d in np.linspace(-0.001, 0.001, iters)] for o in offsets]


def test_the_p50_interval_holds_every_repeat_median():
    timed = [windows_around(1.0), windows_around(1.1), windows_around(1.2)]
    summary = stats.summarize_windows(timed, batch_size=1, bootstrap_resamples=2000)
    low, high = summary["p50_ci95"]
    assert low <= 1.0 and high >= 1.2, summary["p50_ci95"]
    assert summary["p50"] == pytest.approx(1.1)
    # pooling the iterations, as before, gave an interval that excluded two of the three repeats
    pooled = stats.summarize([x for r in timed for w in r for x in w], 1, 2000)["p50_ci95"]
    assert pooled[1] - pooled[0] < 0.1


def test_one_repeat_of_an_even_count_has_one_median():
    calls = [1.0, 2.0, 3.0, 10.0]  # the lower middle value is 2.0, numpy's median 2.5
    latency = stats.latency_summary([[{"wall_ms": calls, "gpu_ms": None}]], 1, 100, 0.1)
    assert latency["repeat_p50_ms"][0] == latency["wall_ms"]["p50"] == 2.5
    assert latency["gpu_ms"] is None and latency["iterations"] == 4 and latency["windows"] == 1


def test_latency_summary_reports_spread_at_window_and_repeat_level():
    timed = [[{"wall_ms": [m] * 3, "gpu_ms": [m / 2] * 3} for m in medians] for medians in ([1, 1.2], [1.4, 1.6])]
    latency = stats.latency_summary(timed, 2, 200, 0.1)
    assert latency["window_p50_ms"] == [[1, 1.2], [1.4, 1.6]]
    assert latency["repeat_p50_ms"] == pytest.approx([1.1, 1.5])
    assert latency["window_p50_cv"] == pytest.approx(stats.coefficient_of_variation([1, 1.2, 1.4, 1.6]))
    assert latency["repeat_p50_cv"] == pytest.approx(stats.coefficient_of_variation([1.1, 1.5]))
    assert latency["gpu_ms"]["p50"] == pytest.approx(0.65)
    assert latency["wall_ms"]["throughput_samples_per_s"] == pytest.approx(2 * 1000 / 1.3)


def test_a_two_level_series_is_flagged_as_two_regimes_with_both_levels():
    rng = np.random.default_rng(3)
    series = np.where(np.arange(30) % 10 < 6, 4.5, 8.3) + rng.normal(0, 0.05, 30)  # switches inside the run
    found = stats.regimes(series, min_gap=0.1)
    assert found is not None
    assert found["levels_ms"] == [pytest.approx(4.5, abs=0.1), pytest.approx(8.3, abs=0.1)]
    assert found["windows"] == [18, 12] and found["share_high"] == pytest.approx(0.4)


@pytest.mark.parametrize("series", [
    np.random.default_rng(4).normal(1.0, 0.01, 40),  # one level with noise
    np.linspace(1.0, 1.3, 40),                       # one wide level: no gap between two groups
    [1.0, 1.0, 1.0, 1.05, 1.05, 1.05],               # two levels closer than min_gap
    [1.0, 2.0],                                      # too few windows to tell
])
def test_one_level_is_not_flagged(series):
    assert stats.regimes(series, min_gap=0.1) is None


def test_ragged_windows_are_an_error():
    with pytest.raises(ValueError, match="same number of windows"):
        stats.summarize_windows([[[1.0]], [[1.0], [2.0]]], 1)
