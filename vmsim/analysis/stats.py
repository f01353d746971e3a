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
    With fewer values than batches the interval is NaN rather than a misleading number. A run's summary
    passes the measured latencies in departure (completion) order, the textbook output sequence of a queue
    and the order the requests log holds them, so it can sum the batches as it reads the log.
    """
    data = np.asarray(values, dtype=float)
    size = data.size // batches if batches >= 1 else 0
    if batches < 2 or size == 0:
        return interval_of_batch_means(None, batches, size, confidence, float(data.mean()) if data.size else math.nan)
    means = data[data.size - size * batches:].reshape(batches, size).mean(axis=1)
    return interval_of_batch_means(means, batches, size, confidence)


def interval_of_batch_means(means, batches: int, size: int, confidence: float = 0.95,
                            mean: float = math.nan) -> MeanInterval:
    """The `batch_means` interval from the batch means themselves (None when there are too few values: then
    the interval is NaN around `mean`), so a sample read a batch at a time (`StreamedLatency`) gets the same."""
    method = f"batch means, {batches} batches, Student t"
    if means is None:
        return MeanInterval(mean, math.nan, math.nan, math.nan, confidence, batches, size, method)
    means = np.asarray(means, dtype=float)
    mean = float(means.mean())
    half = t_quantile(0.5 + confidence / 2, batches - 1) * float(means.std(ddof=1)) / math.sqrt(batches)
    return MeanInterval(mean, mean - half, mean + half, half, confidence, batches, size, method)


# --- exact statistics of a sample read a batch at a time ----------------------------------------

_SUB_BINS = 32  # log-spaced bins per octave above 64: a bin spans at most 1/32 of its values
_POSITIVE_BINS = 32 * 57 + 64  # bins of the non-negative int64 values (the largest: bit length 63)
_LOG_BINS = 2 * _POSITIVE_BINS  # the negative values mirror them below
COLLECT_LIMIT = 65_536
"""Values of one bin a later pass collects to select an order statistic exactly; a fuller bin is cut finer first."""
_FINER_BINS = 4_096


def _bit_length(values: np.ndarray) -> np.ndarray:
    """Each non-negative int64's bit length, exactly (a float's exponent, less one where it rounded up)."""
    _, exponent = np.frexp(values.astype(np.float64))
    exponent = exponent.astype(np.int64)
    power = np.left_shift(np.uint64(1), np.maximum(exponent - 1, 0).astype(np.uint64))
    return exponent - ((exponent > 0) & (power > values.astype(np.uint64)))


def log_bin(values: np.ndarray) -> np.ndarray:
    """Each int64's log-spaced bin, ascending with the value: the values below 64 one each, then 32 bins an
    octave; negative values mirror the non-negative ones below them."""
    values = np.asarray(values, dtype=np.int64)
    magnitude = np.where(values < 0, ~values, values)  # -1 -> 0, -2 -> 1, ...: no overflow at the minimum
    shift = np.maximum(_bit_length(magnitude) - 6, 0)
    bins = np.where(shift > 0, _SUB_BINS * shift + (magnitude >> shift), magnitude)
    return np.where(values < 0, _POSITIVE_BINS - 1 - bins, _POSITIVE_BINS + bins)


def log_bin_range(index: int) -> tuple[int, int]:
    """The smallest and largest int64 in bin `index` of `log_bin`."""
    if index < _POSITIVE_BINS:
        low, high = log_bin_range(2 * _POSITIVE_BINS - 1 - index)
        return ~high, ~low
    bin_ = index - _POSITIVE_BINS
    if bin_ < 64:
        return bin_, bin_
    shift = bin_ // _SUB_BINS - 1
    mantissa = bin_ - _SUB_BINS * shift
    return mantissa << shift, ((mantissa + 1) << shift) - 1


def _lerp(below: float, above: float, gamma: float) -> float:
    """numpy's linear interpolation between two order statistics, operation for operation (so the result is
    numpy's to the last bit)."""
    difference = above - below
    if gamma >= 0.5:
        return float(np.float64(above) - np.float64(difference) * (1 - np.float64(gamma)))
    return float(np.float64(below) + np.float64(difference) * np.float64(gamma))


def percentile_ranks(count: int, points: dict[str, float]) -> dict[str, tuple[int, int, float]]:
    """For each named percentile of `count` values, the two order statistics (0-based ranks) numpy's default
    ("linear") method interpolates between, and the weight of the upper one."""
    quantiles = np.true_divide(np.asarray(list(points.values()), dtype=float), 100)
    virtual = (count - 1) * quantiles
    ranks = {}
    for name, index in zip(points, virtual):
        if index >= count - 1:
            ranks[name] = (count - 1, count - 1, 0.0)
        else:
            below = int(np.floor(index))
            ranks[name] = (below, below + 1, float(index - np.floor(index)))
    return ranks


class StreamedLatency:
    """`latency_summary` of several groups of one sample, and `batch_means` over the whole sample, from
    batches read one at a time: memory bounded by a batch, however long the sample.

    `passes()` gives a fresh iterator of `(codes, values)` int arrays on each call: each value's group code
    (0..`codes`-1) and the value, in the sample's order; `groups` names the sets of codes to summarise
    (a group may hold many codes: a bus, its devices). Counts, sums and maxima come in one pass, with a
    histogram over log-spaced integer bins per code; a second pass collects only the values in the bins
    holding each wanted order statistic and selects it exactly (a bin fuller than `COLLECT_LIMIT` is first
    cut into finer bins, a pass each), so percentiles equal numpy's, interpolation included. The batch
    means are summed in the second pass, once the sample's size says where batches begin.
    """

    def __init__(self, passes, codes: int, groups: dict[str, list[int]], points=LATENCY_PERCENTILES,
                 batches: int = DEFAULT_BATCHES, confidence: float = 0.95):
        self.passes = passes
        self.codes = codes
        self.groups = {name: sorted(set(members)) for name, members in groups.items()}
        self.points = points
        self.batches = batches
        self.confidence = confidence
        self.counts = np.zeros(codes, dtype=np.int64)
        self.sums = [0] * codes
        self.maxima = np.full(codes, np.iinfo(np.int64).min, dtype=np.int64)
        self.histogram = np.zeros((codes, _LOG_BINS), dtype=np.int64)
        self.batch_sums = np.zeros(max(batches, 1))
        self._first_pass()

    def _first_pass(self) -> None:
        for codes, values in self.passes():
            codes, values = np.asarray(codes, dtype=np.int64), np.asarray(values, dtype=np.int64)
            if not values.size:
                continue
            self.counts += np.bincount(codes, minlength=self.codes)
            order = np.argsort(codes, kind="stable")
            by_code = codes[order]
            firsts = np.flatnonzero(np.append(True, by_code[1:] != by_code[:-1]))
            present = by_code[firsts]
            for code, total in zip(present.tolist(), np.add.reduceat(values[order], firsts).tolist()):
                self.sums[code] += total
            np.maximum.at(self.maxima, present, np.maximum.reduceat(values[order], firsts))
            cells = codes * _LOG_BINS + log_bin(values)
            self.histogram += np.bincount(cells, minlength=self.codes * _LOG_BINS).reshape(self.codes, _LOG_BINS)

    def summaries(self) -> tuple[dict[str, dict[str, float]], MeanInterval]:
        """Each group's `latency_summary`, and the batch-means interval over the whole sample."""
        wanted = {}  # (group's codes, rank) -> the value at that rank, found below
        for members in self.groups.values():
            count = int(self.counts[members].sum())
            for below, above, _ in percentile_ranks(count, self.points).values() if count else ():
                wanted[(tuple(members), below)] = wanted[(tuple(members), above)] = None
        found = self._select(list(wanted))
        total = int(self.counts.sum())
        summaries = {}
        for name, members in self.groups.items():
            count = int(self.counts[members].sum())
            if not count:
                summaries[name] = {"mean": math.nan, **{point: math.nan for point in self.points}, "max": math.nan}
                continue
            key = tuple(members)
            figures = {point: _lerp(float(found[(key, below)]), float(found[(key, above)]), gamma)
                       for point, (below, above, gamma) in percentile_ranks(count, self.points).items()}
            summaries[name] = {"mean": sum(self.sums[code] for code in members) / count, **figures,
                               "max": float(self.maxima[members].max())}
        size = self._batch_size()
        if size == 0:
            mean = sum(self.sums) / total if total else math.nan
            return summaries, interval_of_batch_means(None, self.batches, size, self.confidence, mean)
        return summaries, interval_of_batch_means(self.batch_sums / size, self.batches, size, self.confidence)

    def _batch_size(self) -> int:
        """Values in each of the batch means' batches; 0 when there are too few values (or batches)."""
        return int(self.counts.sum()) // self.batches if self.batches >= 2 else 0

    def _select(self, wanted: list[tuple[tuple[int, ...], int]]) -> dict:
        """The values at the wanted ranks, each of the group's values counted in the sample's order, exactly.
        The first of the later passes also sums the batch means."""
        cells = {}  # (codes, lowest, highest, values below) -> ranks wanted in it
        for members, rank in wanted:
            counts = np.cumsum(self.histogram[list(members)].sum(axis=0))
            index = int(np.searchsorted(counts, rank, side="right"))
            low, high = log_bin_range(index)
            below = int(counts[index - 1]) if index else 0
            cells.setdefault((members, low, high, below, int(counts[index]) - below), []).append(rank)
        found: dict = {}
        sum_batches = self._batch_size() > 0
        while cells or sum_batches:
            cells = self._refine(cells, found, sum_batches)
            sum_batches = False
        return found

    def _refine(self, cells: dict, found: dict, sum_batches: bool) -> dict:
        """One pass: each cell's values collected (few enough) or counted in finer bins; the cells still to
        cut finer are returned."""
        collect = {cell: [] for cell in cells if cell[4] <= COLLECT_LIMIT}
        finer = {cell: np.zeros(_FINER_BINS, dtype=np.int64) for cell in cells if cell[4] > COLLECT_LIMIT}
        width = {cell: -(-(cell[2] - cell[1] + 1) // _FINER_BINS) for cell in finer}
        pair_cells = [cell for cell in cells for _ in cell[0]]  # each cell's values: its codes' rows in its bin
        pair_keys = np.array([code * _LOG_BINS + int(log_bin(np.array([cell[1]]))[0]) for cell in cells
                              for code in cell[0]], dtype=np.int64)
        size = self._batch_size()
        dropped, seen = int(self.counts.sum()) - size * self.batches, 0
        for codes, values in self.passes():
            codes, values = np.asarray(codes, dtype=np.int64), np.asarray(values, dtype=np.int64)
            if sum_batches and size and values.size:
                positions = np.arange(seen, seen + values.size) - dropped
                kept = positions >= 0
                self.batch_sums += np.bincount(positions[kept] // size, weights=values[kept],
                                               minlength=self.batches)
            seen += values.size
            keys = codes * _LOG_BINS + log_bin(values)
            order = np.argsort(keys, kind="stable")
            keys, ordered = keys[order], values[order]
            firsts = np.searchsorted(keys, pair_keys, side="left")
            lasts = np.searchsorted(keys, pair_keys, side="right")
            found_in = {}
            for pair in np.flatnonzero(lasts > firsts).tolist():
                found_in.setdefault(pair_cells[pair], []).append(ordered[firsts[pair]:lasts[pair]])
            for cell, parts in found_in.items():
                values_in = np.concatenate(parts)
                values_in = values_in[(values_in >= cell[1]) & (values_in <= cell[2])]
                if cell in collect:
                    collect[cell].append(values_in)
                else:
                    finer[cell] += np.bincount((values_in - cell[1]) // width[cell], minlength=_FINER_BINS)
        remaining = {}
        for cell, parts in collect.items():
            ordered = np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)
            for rank in cells[cell]:
                found[(cell[0], rank)] = int(ordered[rank - cell[3]])
        for cell, counts in finer.items():
            cumulative = np.cumsum(counts)
            for rank in cells[cell]:
                index = int(np.searchsorted(cumulative, rank - cell[3], side="right"))
                below = cell[3] + (int(cumulative[index - 1]) if index else 0)
                low = cell[1] + index * width[cell]
                high = min(low + width[cell] - 1, cell[2])
                key = (cell[0], low, high, below, int(counts[index]))
                if width[cell] == 1:
                    found[(cell[0], rank)] = low
                else:
                    remaining.setdefault(key, []).append(rank)
        return remaining


class LogHistogram:
    """A sample's counts over `log_bin`'s bins, with its exact minimum and maximum: its distribution to within
    a bin (1/32 of a value, exact below 64), in memory bounded however many values are added a batch at a time.
    What a plot draws of millions of latencies."""

    def __init__(self):
        self.counts = np.zeros(_LOG_BINS, dtype=np.int64)
        self.low: int | None = None
        self.high: int | None = None

    @classmethod
    def of(cls, values) -> LogHistogram:
        """The histogram of a whole sample (integers, or floats rounded to the nearest integer)."""
        histogram = cls()
        histogram.add(values)
        return histogram

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def add(self, values, bins: np.ndarray | None = None) -> None:
        """Count `values`; `bins` is their `log_bin` when the caller has it already."""
        values = np.asarray(values)
        if not values.size:
            return
        if values.dtype.kind == "f":
            values = np.rint(values)
        values = values.astype(np.int64, copy=False)
        self.counts += np.bincount(log_bin(values) if bins is None else bins, minlength=_LOG_BINS)
        low, high = int(values.min()), int(values.max())
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def cdf(self) -> tuple[np.ndarray, np.ndarray]:
        """(value, fraction of the sample at or below it) at each filled bin's largest value (the maximum for
        the last): the empirical CDF exact at those points, so a step drawn through them is never off by
        more than a bin's width."""
        filled = np.flatnonzero(self.counts)
        if not filled.size:
            return np.array([]), np.array([])
        values = np.array([log_bin_range(int(index))[1] for index in filled], dtype=float)
        values = np.clip(values, self.low, self.high)
        return values, np.cumsum(self.counts[filled]) / self.total

    def percentiles(self, points: dict[str, float]) -> dict[str, float]:
        """Named percentiles as `percentiles` interpolates them, each order statistic taken as its bin's
        largest value (as `cdf` draws it): within a bin of the exact figure; NaN for an empty sample."""
        count = self.total
        if not count:
            return {name: math.nan for name in points}
        cumulative = np.cumsum(self.counts)

        def value_at(rank: int) -> float:
            index = int(np.searchsorted(cumulative, rank, side="right"))
            return float(min(max(log_bin_range(index)[1], self.low), self.high))

        return {name: _lerp(value_at(below), value_at(above), gamma)
                for name, (below, above, gamma) in percentile_ranks(count, points).items()}


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
