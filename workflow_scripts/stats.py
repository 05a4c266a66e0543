"""Latency statistics: percentiles, bootstrap confidence intervals, throughput."""

import numpy as np
from scipy import stats as scipy_stats

PERCENTILES = (50, 90, 95, 99)


def summarize(samples_ms, batch_size: int, bootstrap_resamples: int = 1000, seed: int = 0) -> dict:
    """Summary of per-iteration latencies in milliseconds for one batch size."""
    samples = np.asarray(samples_ms, dtype=float)
    if samples.size == 0:
        raise ValueError("no latency samples to summarize")
    summary = {
        "n": int(samples.size),
        "mean": float(samples.mean()),
        "std": float(samples.std(ddof=1)) if samples.size > 1 else 0.0,
        "min": float(samples.min()),
        "max": float(samples.max()),
    }
    for q in PERCENTILES:
        summary[f"p{q}"] = float(np.percentile(samples, q))
    summary["p50_ci95"] = bootstrap_ci(samples, np.median, bootstrap_resamples, seed)
    summary["mean_ci95"] = bootstrap_ci(samples, np.mean, bootstrap_resamples, seed)
    summary["throughput_samples_per_s"] = batch_size * 1000.0 / summary["mean"]
    return summary


def bootstrap_ci(samples, statistic, resamples: int, seed: int = 0) -> list[float]:
    """95% percentile-bootstrap interval of `statistic`; degenerate (constant) samples give [x, x]."""
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
    """Spread of repeat medians: std / mean (0 for a single repeat)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2 or values.mean() == 0:
        return 0.0
    return float(values.std(ddof=1) / values.mean())
