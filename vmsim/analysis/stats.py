"""Statistics for simulation output: percentiles, batch-means confidence intervals, Little's law.

Pure numpy plus the standard library (no scipy): the t quantile is computed from the exact
Student-t distribution function for integer degrees of freedom, inverted by bisection, so a
confidence interval printed by vmsim can be checked against any t table.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

LATENCY_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
DEFAULT_BATCHES = 20

# Above this many degrees of freedom the t quantile comes from the Cornish-Fisher expansion around
# the normal quantile (error < 4e-6 up to p = 0.9995), instead of inverting the exact finite sum.
_EXACT_DF_LIMIT = 30


def percentiles(values, points: dict[str, float] = LATENCY_PERCENTILES) -> dict[str, float]:
    """Named percentiles (linear interpolation between order statistics); NaN for no values."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return {name: math.nan for name in points}
    found = np.percentile(data, list(points.values()))
    return {name: float(value) for name, value in zip(points, found)}


def latency_summary(latency_ns) -> dict[str, float]:
    """mean, p50, p90, p99, p999 and max of a latency sample (NaN when empty)."""
    data = np.asarray(latency_ns, dtype=float)
    empty = data.size == 0
    return {
        "mean": math.nan if empty else float(data.mean()),
        **percentiles(data),
        "max": math.nan if empty else float(data.max()),
    }


def _t_two_sided_mass(t: float, df: int) -> float:
    """P(|T| < t) for Student's t with integer `df` (Abramowitz & Stegun 26.7.3 / 26.7.4)."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2:  # odd: 2/pi * (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...))
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for k in range(1, (df - 1) // 2):
            term *= cos2 * (2 * k) / (2 * k + 1)
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    term, total = 1.0, 1.0  # even: sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...)
    for k in range(1, df // 2):
        term *= cos2 * (2 * k - 1) / (2 * k)
        total += term
    return math.sin(theta) * total


def _t_cornish_fisher(p: float, df: float) -> float:
    z = NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom, e.g. t_quantile(0.975, 19) = 2.093."""
    if not 0 < p < 1:
        raise ValueError(f"probability {p} is not in (0, 1)")
    if df < 1:
        raise ValueError(f"degrees of freedom {df} must be >= 1")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    if p == 0.5:
        return 0.0
    if df > _EXACT_DF_LIMIT:
        return _t_cornish_fisher(p, df)
    mass = 2 * p - 1  # P(|T| < t) that the two-sided form must reach
    low, high = 0.0, 1.0
    while _t_two_sided_mass(high, int(df)) < mass:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if _t_two_sided_mass(middle, int(df)) < mass:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    return (low + high) / 2


@dataclass(frozen=True)
class MeanInterval:
    """A mean with its confidence interval, and how it was obtained."""

    mean: float
    low: float
    high: float
    half_width: float
    confidence: float
    batches: int
    batch_size: int
    method: str

    def as_dict(self) -> dict:
        return asdict(self)


def batch_means(values, batches: int = DEFAULT_BATCHES, confidence: float = 0.95) -> MeanInterval:
    """Mean of a correlated, time-ordered sample with a t confidence interval by batch means.

    Consecutive observations of a queue are correlated, so the iid standard error understates
    the uncertainty. The sample is cut into `batches` contiguous batches of equal size; with
    batches long enough the batch means are nearly independent and normal, and the interval is
    mean +- t(1 - alpha/2, batches - 1) * sd(batch means) / sqrt(batches). The first
    `len % batches` values (the ones nearest the warm-up) are dropped so batches are equal.
    With fewer values than batches the interval is NaN rather than a misleading number.
    """
    data = np.asarray(values, dtype=float)
    method = f"batch means, {batches} batches, Student t"
    size = data.size // batches
    if batches < 2 or size == 0:
        mean = float(data.mean()) if data.size else math.nan
        return MeanInterval(mean, math.nan, math.nan, math.nan, confidence, batches, size, method)
    used = data[data.size - size * batches:]
    means = used.reshape(batches, size).mean(axis=1)
    mean = float(means.mean())
    half = t_quantile(0.5 + confidence / 2, batches - 1) * float(means.std(ddof=1)) / math.sqrt(batches)
    return MeanInterval(mean, mean - half, mean + half, half, confidence, batches, size, method)


# --- Little's law and queueing oracles --------------------------------------------------------


def time_average(time_ns, level, end_ns: int, start_ns: int = 0) -> float:
    """Time-weighted mean of a step function (level[i] holds from time_ns[i] to the next change)."""
    times = np.asarray(time_ns, dtype=np.int64)
    levels = np.asarray(level, dtype=float)
    if end_ns <= start_ns or times.size == 0:
        return math.nan
    edges = np.clip(np.append(times, end_ns), start_ns, end_ns)
    return float((levels * np.diff(edges)).sum() / (end_ns - start_ns))


def mean_in_system(submit_ns, complete_ns, end_ns: int, start_ns: int = 0) -> float:
    """Time-averaged number of requests between submit and completion over [start, end): L."""
    if end_ns <= start_ns:
        return math.nan
    submit = np.clip(np.asarray(submit_ns, dtype=np.int64), start_ns, end_ns)
    complete = np.clip(np.asarray(complete_ns, dtype=np.int64), start_ns, end_ns)
    return float((complete - submit).sum() / (end_ns - start_ns))


def littles_law_l(throughput_per_s: float, mean_latency_ns: float) -> float:
    """L = lambda * W: the mean number in system that a throughput and mean latency imply."""
    return throughput_per_s * mean_latency_ns / 1e9


def mm1_response_ns(arrival_rate_hz: float, mean_service_ns: float) -> float:
    """Mean response time of an M/M/1 queue: S / (1 - rho)."""
    rho = arrival_rate_hz * mean_service_ns / 1e9
    if rho >= 1:
        raise ValueError(f"utilisation {rho:.3f} >= 1: the queue has no steady state")
    return mean_service_ns / (1 - rho)


def md1_response_ns(arrival_rate_hz: float, service_ns: float) -> float:
    """Mean response time of an M/D/1 queue (Pollaczek-Khinchine): S + rho S / (2 (1 - rho))."""
    rho = arrival_rate_hz * service_ns / 1e9
    if rho >= 1:
        raise ValueError(f"utilisation {rho:.3f} >= 1: the queue has no steady state")
    return service_ns + rho * service_ns / (2 * (1 - rho))


def windowed_levels(time_ns, level, end_ns: int, windows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A step function (level[i] holds from time_ns[i] to the next change, 0 before the first) cut into
    `windows` equal windows of [0, end_ns): the edges, the time-weighted mean and the maximum in each.

    A queue's occupancy changes millions of times in a long run: drawn step by step it is a 0/1 barcode,
    while the mean and maximum per window show its load and its peaks at any length."""
    times = np.asarray(time_ns, dtype=np.int64)
    levels = np.asarray(level, dtype=float)
    edges = np.linspace(0, end_ns, windows + 1)
    if times.size == 0 or end_ns <= 0:
        return edges, np.zeros(windows), np.zeros(windows)
    times, levels = np.append(0, times), np.append(0.0, levels)  # nothing before the first change
    area = np.append(0.0, np.cumsum(levels[:-1] * np.diff(times)))  # under the curve up to each change
    active = np.searchsorted(times, edges, side="right") - 1
    area_at = area[active] + levels[active] * (edges - times[active])
    means = np.diff(area_at) / np.diff(edges)
    last = np.searchsorted(times, edges[1:], side="left") - 1  # the last change before a window ends
    peaks = np.array([levels[first:max(first, final) + 1].max() for first, final in zip(active[:-1], last)])
    return edges, means, peaks
