"""Latency statistics: one median, window-level summaries, hierarchical bootstrap intervals, regime detection.

Timings arrive as repeats of short windows of iterations (workflow_scripts/measure.py). A window's median is
the unit of measurement: the cell's p50 is the median of its window medians, and intervals resample repeats,
then windows inside each repeat, so that the spread between repeats is inside the interval (resampling
pooled iterations treats thousands of correlated samples as independent and gives intervals far too narrow).
"""

import numpy as np
from scipy import stats as scipy_stats

PERCENTILES = (90, 95, 99)


def median(values) -> float:
    """The one median of inferbench: numpy's (the mean of the two middle values of an even count)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no values to take the median of")
    return float(np.median(values))


def summarize(samples_ms, batch_size: int, bootstrap_resamples: int = 1000, seed: int = 0) -> dict:
    """Summary of independent per-request latencies in milliseconds (one window, e.g. a served load level).

    Keys: n, mean, std, min, max, p50, p90, p95, p99 (ms), p50_ci95 and mean_ci95 ([low, high] ms, 95%
    percentile bootstrap over the samples), throughput_samples_per_s (batch_size / mean). Raises ValueError
    on an empty sample.
    """
    samples = np.asarray(samples_ms, dtype=float)
    if samples.size == 0:
        raise ValueError("no latency samples to summarize")
    summary = pooled_summary(samples, batch_size)
    summary["p50"] = median(samples)
    summary["p50_ci95"] = bootstrap_ci(samples, np.median, bootstrap_resamples, seed)
    summary["mean_ci95"] = bootstrap_ci(samples, np.mean, bootstrap_resamples, seed)
    return summary


def pooled_summary(samples: np.ndarray, batch_size: int) -> dict:
    """Moments, extremes and tail percentiles of all samples together; throughput = batch_size / mean."""
    summary = {
        "n": int(samples.size),
        "mean": float(samples.mean()),
        "std": float(samples.std(ddof=1)) if samples.size > 1 else 0.0,
        "min": float(samples.min()),
        "max": float(samples.max()),
    }
    for q in PERCENTILES:
        summary[f"p{q}"] = float(np.percentile(samples, q))
    summary["throughput_samples_per_s"] = batch_size * 1000.0 / summary["mean"]
    return summary


def summarize_windows(windows_ms: list[list[list[float]]], batch_size: int, bootstrap_resamples: int = 1000,
                      seed: int = 0) -> dict:
    """Summary of timings measured as repeats x windows x iterations (milliseconds).

    Every repeat must have the same number of windows, every window at least one iteration. p50 is the median
    of the window medians; p90/p95/p99, mean, std, min and max are over all iterations pooled (the tail is a
    property of single calls); mean is total time over total calls, so throughput_samples_per_s =
    batch_size / mean. p50_ci95 and mean_ci95 are 95% hierarchical bootstrap intervals (repeats, then windows
    inside each). Raises ValueError when there is no sample or the windows are ragged.
    """
    shape = {len(repeat) for repeat in windows_ms}
    if not windows_ms or shape == {0} or any(len(w) == 0 for r in windows_ms for w in r):
        raise ValueError("no latency samples to summarize")
    if len(shape) != 1:
        raise ValueError(f"every repeat needs the same number of windows, got {sorted(shape)}")
    pooled = np.concatenate([np.asarray(w, dtype=float) for repeat in windows_ms for w in repeat])
    summary = pooled_summary(pooled, batch_size)
    window_p50 = window_medians(windows_ms)
    sums = np.array([[np.sum(w) for w in repeat] for repeat in windows_ms])
    counts = np.array([[len(w) for w in repeat] for repeat in windows_ms], dtype=float)
    summary["p50"] = median(window_p50)
    summary["p50_ci95"] = hierarchical_ci(window_p50, median_of_windows, bootstrap_resamples, seed)
    summary["mean_ci95"] = hierarchical_ci(np.stack([sums, counts], axis=-1), mean_of_windows,
                                           bootstrap_resamples, seed)
    return summary


def window_medians(windows_ms: list[list[list[float]]]) -> np.ndarray:
    """Median of each window, shape (repeats, windows)."""
    return np.array([[median(w) for w in repeat] for repeat in windows_ms])


def median_of_windows(resampled: np.ndarray) -> np.ndarray:
    """Per bootstrap resample (axis 0), the median of its (repeats, windows) values."""
    return np.median(resampled.reshape(resampled.shape[0], -1), axis=1)


def mean_of_windows(resampled: np.ndarray) -> np.ndarray:
    """Per resample, total time over total calls, from (resamples, repeats, windows, [sum, count])."""
    return resampled[..., 0].sum(axis=(1, 2)) / resampled[..., 1].sum(axis=(1, 2))


def hierarchical_ci(values: np.ndarray, statistic, resamples: int, seed: int = 0) -> list[float]:
    """95% percentile interval of `statistic` under a two-level bootstrap of (repeats, windows, ...) values.

    Each resample draws repeats with replacement, then windows with replacement inside each drawn repeat (the
    standard hierarchical bootstrap for nested measurements); `statistic` maps an array of shape
    (resamples, repeats, windows, ...) to one value per resample. scipy.stats.bootstrap resamples only one
    level of independent observations, so it cannot express this. Returns [low, high].
    """
    values = np.asarray(values, dtype=float)
    n_repeats, n_windows = values.shape[:2]
    rng = np.random.default_rng(seed)
    picked_repeats = rng.integers(n_repeats, size=(resamples, n_repeats, 1))
    picked_windows = rng.integers(n_windows, size=(resamples, n_repeats, n_windows))
    estimates = statistic(values[picked_repeats, picked_windows])
    low, high = np.percentile(estimates, [2.5, 97.5])
    return [float(low), float(high)]


def bootstrap_ci(samples, statistic, resamples: int, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of `statistic` over independent samples; constant samples give [x, x]."""
    samples = np.asarray(samples, dtype=float)
    if samples.size < 2 or np.all(samples == samples[0]):
        value = float(statistic(samples))
        return [value, value]
    result = scipy_stats.bootstrap(
        (samples,), statistic, n_resamples=resamples, confidence_level=0.95,
        method="percentile", random_state=np.random.default_rng(seed), vectorized=True, axis=-1,
    )
    return [float(result.confidence_interval.low), float(result.confidence_interval.high)]


def coefficient_of_variation(values) -> float:
    """Spread of medians: std / mean (0 for a single value)."""
    values = np.asarray(values, dtype=float).ravel()
    if values.size < 2 or values.mean() == 0:
        return 0.0
    return float(values.std(ddof=1) / values.mean())


def regimes(series_ms, min_gap: float) -> dict | None:
    """Two levels in a series of window medians, or None when the series has one level.

    The series is split where the between-level variance is largest (Otsu's threshold in one dimension). It
    counts as two regimes when each level holds at least two windows and 10% of them, the upper level's median
    is at least `min_gap` (relative) above the lower one's, and the gap between the levels is wider than three
    times either level's median absolute deviation (a wide single level is not two). Returns
    {"levels_ms": [low, high] medians, "windows": [n_low, n_high], "share_high": fraction of windows in the
    upper level}.
    """
    values = np.sort(np.asarray(series_ms, dtype=float).ravel())
    n = values.size
    least = max(2, int(np.ceil(0.1 * n)))
    if n < 2 * least:
        return None
    splits = np.arange(least, n - least + 1)
    sums = np.cumsum(values)
    low_means, high_means = sums[splits - 1] / splits, (sums[-1] - sums[splits - 1]) / (n - splits)
    split = int(splits[np.argmax(splits * (n - splits) * (high_means - low_means) ** 2)])
    low, high = values[:split], values[split:]
    low_level, high_level = median(low), median(high)
    spread = max(np.median(np.abs(low - low_level)), np.median(np.abs(high - high_level)))
    if high_level < low_level * (1 + min_gap) or high[0] - low[-1] <= 3 * spread:
        return None
    return {"levels_ms": [low_level, high_level], "windows": [int(low.size), int(high.size)],
            "share_high": float(high.size / n)}


def latency_summary(timed: list[list[dict]], batch_size: int, bootstrap_resamples: int, regime_min_gap: float) -> dict:
    """A cell's `latency` from measure.time_windows' repeats x windows of {"wall_ms", "gpu_ms"}.

    wall_ms / gpu_ms: summarize_windows of host and CUDA-event times (gpu_ms None off CUDA);
    window_p50_ms: each repeat's window medians in time order; window_p50_cv: their spread (all windows);
    repeat_p50_ms: median of each repeat's window medians; repeat_p50_cv: the spread of those;
    regimes: `regimes` of the window medians in time order (None: one level); iterations, windows: counts.
    """
    wall = [[w["wall_ms"] for w in repeat] for repeat in timed]
    gpu = [[w["gpu_ms"] for w in repeat] for repeat in timed]
    has_gpu = all(w is not None for repeat in gpu for w in repeat)
    window_p50 = window_medians(wall)
    repeat_p50 = [median(row) for row in window_p50]
    return {
        "wall_ms": summarize_windows(wall, batch_size, bootstrap_resamples),
        "gpu_ms": summarize_windows(gpu, batch_size, bootstrap_resamples) if has_gpu else None,
        "window_p50_ms": window_p50.tolist(),
        "window_p50_cv": coefficient_of_variation(window_p50),
        "repeat_p50_ms": repeat_p50,
        "repeat_p50_cv": coefficient_of_variation(repeat_p50),
        "regimes": regimes(window_p50, regime_min_gap),
        "iterations": int(sum(len(w) for repeat in wall for w in repeat)),
        "windows": int(window_p50.size),
    }
