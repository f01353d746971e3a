"""Statistics helpers: the numbers behind every confidence interval and queueing oracle in vmsim."""

import math

import numpy as np
import pytest

from vmsim.analysis.stats import (
    batch_means,
    latency_summary,
    littles_law_l,
    md1_response_ns,
    mean_in_system,
    mm1_response_ns,
    percentiles,
    t_quantile,
    time_average,
)

# Two-sided 95% (and a few other) critical values from any printed t table.
T_TABLE = [(0.975, 1, 12.706), (0.975, 2, 4.303), (0.975, 5, 2.571), (0.975, 10, 2.228), (0.975, 19, 2.093),
           (0.975, 30, 2.042), (0.975, 60, 2.000), (0.975, 120, 1.980), (0.995, 9, 3.250), (0.95, 1, 6.314),
           (0.90, 2, 1.886), (0.975, 10_000, 1.960)]


@pytest.mark.parametrize("p, df, expected", T_TABLE)
def test_t_quantile_matches_the_printed_table(p, df, expected):
    """The t quantile is computed without scipy; it must agree with a t table to its 3 decimals."""
    assert t_quantile(p, df) == pytest.approx(expected, abs=6e-4)


def test_t_quantile_is_symmetric_and_rejects_nonsense():
    """Lower quantiles mirror upper ones; a probability outside (0, 1) is a caller bug, not a NaN."""
    assert t_quantile(0.025, 19) == pytest.approx(-t_quantile(0.975, 19))
    assert t_quantile(0.5, 7) == 0.0
    with pytest.raises(ValueError):
        t_quantile(1.0, 5)
    with pytest.raises(ValueError):
        t_quantile(0.9, 0)


def test_percentiles_and_latency_summary_on_known_values():
    """1..100: the mean is 50.5, p50 interpolates to 50.5, p99 to 99.01; max is the largest value."""
    values = np.arange(1, 101)
    assert percentiles(values, {"p50": 50, "p99": 99}) == pytest.approx({"p50": 50.5, "p99": 99.01})
    summary = latency_summary(values)
    assert summary["mean"] == 50.5 and summary["max"] == 100
    assert set(summary) == {"mean", "p50", "p90", "p99", "p999", "max"}


def test_empty_sample_gives_nan_not_an_exception():
    """A run whose requests all fall in the warm-up still produces a summary (with NaN latencies)."""
    assert all(math.isnan(value) for value in latency_summary([]).values())
    assert math.isnan(batch_means([]).mean)


def test_batch_means_interval_covers_the_true_mean_of_iid_data():
    """With iid normal data, 20 batch means give a 95% interval that contains the true mean
    about 95% of the time: the t critical value (not 1.96) is what makes the coverage right."""
    rng = np.random.default_rng(2024)
    one = batch_means(rng.normal(1000.0, 50.0, 4000))
    assert one.low < 1000.0 < one.high
    assert (one.batches, one.batch_size, one.confidence) == (20, 200, 0.95)
    covered = 0
    replications = 400
    for _ in range(replications):
        interval = batch_means(rng.normal(5.0, 2.0, 400))
        covered += interval.low <= 5.0 <= interval.high
    assert 0.91 <= covered / replications <= 0.99


def test_batch_means_widens_for_correlated_data():
    """Queue latencies are autocorrelated; batch means must widen the interval compared with the
    naive iid standard error, which would claim far more precision than the data holds."""
    rng = np.random.default_rng(7)
    noise = rng.normal(size=20_000)
    series = np.empty_like(noise)
    series[0] = noise[0]
    for index in range(1, noise.size):  # AR(1), phi = 0.9
        series[index] = 0.9 * series[index - 1] + noise[index]
    naive_half_width = 1.96 * series.std(ddof=1) / math.sqrt(series.size)
    assert batch_means(series).half_width > 2 * naive_half_width


def test_batch_means_drops_the_oldest_remainder_and_needs_enough_values():
    """Unequal batches would bias the interval: the first len % batches values are dropped.
    With fewer values than batches there is no interval, only the mean."""
    interval = batch_means(np.r_[1e6, np.ones(40)], batches=20)
    assert interval.mean == 1.0 and interval.batch_size == 2 and interval.half_width == 0.0
    short = batch_means([1.0, 2.0, 3.0], batches=20)
    assert short.mean == 2.0 and math.isnan(short.half_width)


def test_littles_law_holds_on_a_hand_made_schedule():
    """Three requests of 2, 4 and 6 us in a 10 us window: L from the intervals is 1.2, and
    lambda * W = (3 / 10 us) * 4 us = 1.2 as well."""
    submit, complete = [0, 2_000, 4_000], [2_000, 6_000, 10_000]
    in_system = mean_in_system(submit, complete, end_ns=10_000)
    assert in_system == pytest.approx(1.2)
    assert littles_law_l(3 / 10e-6, 4_000) == pytest.approx(in_system)


def test_time_average_of_a_step_function():
    """Occupancy 0 until 2 us, 4 until 3 us, then 1 until 10 us: (4 * 1 + 1 * 7) / 10 = 1.1."""
    assert time_average([0, 2_000, 3_000], [0, 4, 1], end_ns=10_000) == pytest.approx(1.1)
    assert time_average([0, 2_000, 3_000], [0, 4, 1], end_ns=10_000, start_ns=2_000) == pytest.approx(11 / 8)


def test_queueing_oracles():
    """M/M/1 at rho 0.5 doubles the service time; M/D/1 waits half as long as M/M/1."""
    assert mm1_response_ns(500_000, 1_000) == pytest.approx(2_000)
    assert md1_response_ns(500_000, 1_000) == pytest.approx(1_500)
    with pytest.raises(ValueError):
        mm1_response_ns(1_000_000, 1_000)
