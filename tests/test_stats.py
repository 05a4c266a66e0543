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
