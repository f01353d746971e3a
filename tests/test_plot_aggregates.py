"""The latency and throughput plots draw aggregates read a batch at a time (issue 16): a histogram per latency
curve and a count per throughput slice, so plotting ten million requests takes no more memory than plotting a
thousand, and the figure is the one the whole table would draw."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vmsim
from vmsim import pipeline
from vmsim.analysis.plots import latency_cdf, request_aggregates, throughput
from vmsim.analysis.stats import LogHistogram
from vmsim.results import RunResult
from vmsim.spill import LogSpill

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "xen-many-domus.yaml"
SHORT = ["duration=5 ms", "warmup=1 ms"]
BIN_WIDTH = 1 / 32  # a log-spaced bin spans at most this fraction of its values


def lognormal_latencies(size: int, seed: int = 7) -> np.ndarray:
    return np.rint(np.random.default_rng(seed).lognormal(np.log(20_000), 1.0, size)).astype(np.int64)


def test_the_cdf_from_the_histogram_is_exact_at_its_points_and_within_a_bin_between_them():
    """Each drawn point is the exact fraction at or below it; between points the curve lags the exact one by
    less than a bin, so no latency is shown more than 1/32 away from where it is."""
    sample = np.sort(lognormal_latencies(200_000))
    values, fractions = LogHistogram.of(sample).cdf()
    exact_at = np.searchsorted(sample, values, side="right") / sample.size
    assert np.array_equal(fractions, exact_at)

    def drawn(x):  # the step curve through the points (where="post")
        index = np.searchsorted(values, x, side="right") - 1
        return np.where(index >= 0, fractions[np.maximum(index, 0)], 0.0)

    exact = np.searchsorted(sample, sample, side="right") / sample.size
    assert np.all(drawn(sample) <= exact)
    assert np.all(drawn(sample * (1 + BIN_WIDTH) + 1) >= exact)


def test_the_marked_percentiles_are_within_a_bin_of_the_exact_ones():
    """p50 and p99 lines come from the histogram too: off by less than a bin's width, exact below 64 ns."""
    sample = lognormal_latencies(100_000, seed=3)
    marked = LogHistogram.of(sample).percentiles({"p50": 50.0, "p99": 99.0})
    exact = dict(zip(("p50", "p99"), np.percentile(sample, [50.0, 99.0])))
    assert all(abs(marked[name] - exact[name]) <= exact[name] * BIN_WIDTH for name in exact)
    small = np.arange(60)
    assert LogHistogram.of(small).percentiles({"p50": 50.0}) == {"p50": float(np.percentile(small, 50.0))}


def test_throughput_counted_batch_by_batch_is_the_histogram_of_the_whole_column():
    """Completions per slice summed over uneven batches equal numpy's histogram of every completion."""
    rng = np.random.default_rng(11)
    complete = np.sort(rng.integers(0, 10_000_000, 50_000))
    table = pd.DataFrame({"submit_ns": complete - 5_000, "complete_ns": complete, "latency_ns": np.full(50_000, 5_000)})
    cuts = np.sort(rng.integers(0, len(table), 40))
    batches = [table.iloc[start:end] for start, end in zip([0, *cuts], [*cuts, len(table)])]
    counted = request_aggregates(batches, rows=len(table), sim_time_ns=10_000_000, warmup_ns=1_000_000)
    expected, edges = np.histogram(complete, bins=100, range=(0, 10_000_000))
    assert np.array_equal(counted.completions, expected) and np.array_equal(counted.edges, edges)
    assert counted.latency["all"].total == int(np.sum(complete - 5_000 >= 1_000_000))


@pytest.fixture(scope="module")
def whole():
    return vmsim.run(SCENARIO, set=SHORT, write=False)


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    """The same run with its requests written in row groups of 50 rows."""
    checked = pipeline.load(SCENARIO, SHORT)
    spill = LogSpill.next_to(tmp_path_factory.mktemp("streamed") / "r", 50)
    ran = pipeline.simulate(checked, spill=spill)
    return RunResult.of(checked.scenario, ran.output, wall_seconds=ran.wall_seconds, spill=spill)


def drawn_data(latency_axes, throughput_axes) -> list:
    """Every line's label and points and every stair's outline: what the two figures show."""
    curves = [(line.get_label(), np.asarray(line.get_xdata()).tolist(), np.asarray(line.get_ydata()).tolist())
              for line in latency_axes.lines]
    return [curves, [patch.get_path().vertices.tolist() for patch in throughput_axes.patches]]


def figure_data(result: RunResult) -> list:
    from matplotlib.figure import Figure

    return drawn_data(result.plot_latency_cdf(ax=Figure().add_subplot()),
                      result.plot_throughput(ax=Figure().add_subplot()))


def test_a_run_read_in_many_small_row_groups_draws_the_figures_of_the_run_kept_whole(whole, streamed):
    """Four buses, a curve each plus the pooled one: the streamed run's requests, read back 50 rows at a time,
    draw exactly the data the table kept in memory draws as one batch."""
    assert streamed._request_aggregates is not whole._request_aggregates
    drawn = figure_data(streamed)
    assert drawn == figure_data(whole)
    assert [label for label, _, _ in drawn[0] if not label.startswith("_")] == ["all", "xen1", "xen2", "xen3", "xen4"]


def test_a_requests_dataframe_draws_what_the_result_draws(whole):
    """A notebook may hand the plots its requests DataFrame: aggregated the same way, the same curves."""
    from matplotlib.figure import Figure

    from_frame = latency_cdf(whole.requests, ax=Figure().add_subplot(), warmup_ns=whole.output.warmup_ns,
                             sim_time_ns=whole.output.sim_time_ns)
    rate = throughput(whole.requests, ax=Figure().add_subplot(), sim_time_ns=whole.output.sim_time_ns,
                      warmup_ns=whole.output.warmup_ns)
    assert drawn_data(from_frame, rate) == figure_data(whole)
