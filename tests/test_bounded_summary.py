"""Everything after the simulation runs in bounded memory: the summary reads the requests a batch at a time,
the liveness check follows each device as its requests come, and occupancy series fold their older changes
into windows. None of it may change a number that can be exact."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import vmsim
from vmsim import pipeline, results
from vmsim.analysis import stats
from vmsim.analysis.liveness import DeviceProgress, device_stall, queue_stall
from vmsim.results import RunResult
from vmsim.sim import output as sim_output
from vmsim.sim.output import Series
from vmsim.spill import LogSpill

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "sharing" / "amp-vsock.yaml"  # 3 buses, warm-up
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def streamed_summary(values: np.ndarray, codes: np.ndarray, cuts: list[int], groups: dict):
    """The groups' summaries and the batch means, with the sample read in the batches `cuts` makes."""
    parts = np.split(np.arange(values.size), sorted(cut % (values.size + 1) for cut in cuts))
    latency = stats.StreamedLatency(lambda: ((codes[part], values[part]) for part in parts),
                                    max(max(members) for members in groups.values()) + 1, groups)
    return latency.summaries()


def same(found: dict, expected: dict) -> bool:
    return all(found[key] == value or (np.isnan(found[key]) and np.isnan(value)) for key, value in expected.items())


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.one_of(INT64, st.integers(0, 40), st.just(123_456_789)), min_size=1, max_size=300),
       cuts=st.lists(st.integers(0, 300), max_size=6), collect=st.sampled_from([1, 3, 65_536]))
def test_percentiles_read_in_batches_are_numpys_to_the_bit(values, cuts, collect):
    """Extremes, duplicates, one crowded bin, any batching, and bins too full to collect (cut finer first):
    every percentile and the maximum equal numpy's, interpolation included."""
    data = np.array(values, dtype=np.int64)
    codes = np.arange(data.size) % 2
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stats, "COLLECT_LIMIT", collect)
        summaries, _ = streamed_summary(data, codes, cuts, {"all": [0, 1], "odd": [1]})
    for name, mine in (("all", data), ("odd", data[codes == 1])):
        expected = stats.latency_summary(mine)
        del expected["mean"]  # numpy sums as floats: past 2**53 its mean is not the exact one
        assert same(summaries[name], expected)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(0, 10**9), min_size=0, max_size=400), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_latency_summary_and_batch_means_read_in_batches_equal_the_whole_sample(values, cuts):
    """Latencies of a run's scale: the mean and the batch-means interval are the whole sample's too."""
    data = np.array(values, dtype=np.int64)
    summaries, interval = streamed_summary(data, np.zeros(data.size, dtype=np.int64), cuts, {"all": [0]})
    assert same(summaries["all"], stats.latency_summary(data))
    expected = stats.batch_means(data).as_dict()
    assert same(interval.as_dict(), expected) if data.size else np.isnan(interval.mean)


def test_a_summary_read_seven_requests_at_a_time_equals_the_one_batch_summary(tmp_path, monkeypatch):
    """Three buses, three devices and a warm-up: counts, per-bus and per-device latency, the interval, the
    warnings and the checks come out the same from 200-odd batches of a streamed run as from one batch."""
    whole = vmsim.run(SCENARIO, write=False)
    monkeypatch.setattr(results, "SUMMARY_BATCH_ROWS", 7)
    checked = pipeline.load(SCENARIO)
    spill = LogSpill.next_to(tmp_path / "r", 50)
    ran = pipeline.simulate(checked, spill=spill)
    streamed = RunResult.of(checked.scenario, ran.output, wall_seconds=ran.wall_seconds, spill=spill)
    spill.discard()
    assert len(whole.output.requests) > 1000 and len(whole.summary["buses"]) == 3
    ignored = ("wall_seconds", "trace")
    assert ({key: value for key, value in streamed.summary.items() if key not in ignored}
            == {key: value for key, value in whole.summary.items() if key not in ignored})


def test_the_requests_log_is_in_completion_order_and_batch_means_follow_it():
    """The driver logs a request when it sees it complete, so complete_ns never decreases; the interval is
    batch means over the measured latencies in that (departure) order."""
    run = vmsim.run(SCENARIO, write=False)
    requests, output = run.requests_table, run.output
    complete = requests.column("complete_ns").to_numpy()
    submit = requests.column("submit_ns").to_numpy()
    assert np.all(np.diff(complete) >= 0) and np.any(np.diff(submit) < 0)  # departures differ from arrivals
    measured = (submit >= output.warmup_ns) & (complete <= output.sim_time_ns)
    expected = stats.batch_means(requests.column("latency_ns").to_numpy()[measured]).as_dict()
    reported = run.summary["latency_ci95_ns"]
    assert set(reported) == set(expected)
    for key, value in expected.items():  # numbers to rounding, the rest (the method's name) as it is
        assert reported[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key


steps = st.lists(st.tuples(st.integers(0, 40), st.integers(-2, 2)), min_size=1, max_size=600)


def recorded(changes, strictly_later: bool) -> tuple[np.ndarray, np.ndarray, Series]:
    """A non-negative step function from (gap, step) pairs, recorded into a small Series."""
    times = np.cumsum([gap + strictly_later for gap, _ in changes])
    level, levels = 0, []
    for _, step in changes:
        level = max(0, level + step)
        levels.append(level)
    levels = np.array(levels, dtype=np.int64)
    series = Series()
    for time, value in zip(times.tolist(), levels.tolist()):
        series.record(time, value)
    return times, levels, series


@settings(max_examples=120, deadline=None)
@given(changes=steps, strictly_later=st.booleans(), after_end=st.integers(0, 50))
def test_a_folded_series_keeps_its_time_weighted_mean_and_queue_stall_exact(changes, strictly_later, after_end):
    """Past a few dozen changes the series folds into windows: the time-weighted mean over the run, the
    mean and maximum of each window it folded, and the longest stall are what the changes themselves give."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sim_output, "RAW_POINTS", 16)
        patch.setattr(sim_output, "WINDOWS", 8)
        times, levels, series = recorded(changes, strictly_later)
    end = int(times[-1]) + after_end
    folded_times, folded_levels = np.frombuffer(series.time, np.int64), np.frombuffer(series.level, np.int64)
    assert folded_times.size <= 16 + 4 * 8
    assert stats.time_average(folded_times, folded_levels, end) == pytest.approx(
        stats.time_average(times, levels, end), rel=1e-12, nan_ok=True)
    assert series.queue_stall(end) == queue_stall(times, levels, end)
    windows = series._folded_until // series._width
    if windows and strictly_later:  # a level held no time exactly on an edge is a window's peak only here
        edges = windows * series._width
        folded = stats.windowed_levels(folded_times, folded_levels, edges, windows)
        exact = stats.windowed_levels(times, levels, edges, windows)
        assert np.allclose(folded[1], exact[1], rtol=1e-12) and np.array_equal(folded[2], exact[2])


def test_a_long_series_stays_within_its_bound():
    """A million changes keep at most the raw changes and four steps a window."""
    series = Series()
    for time in range(0, 2_000_000, 2):
        series.record(time, time % 7)
    assert len(series.level) <= sim_output.RAW_POINTS + 4 * sim_output.WINDOWS
    times = np.arange(0, 2_000_000, 2)
    assert stats.time_average(series.time, series.level, 2_000_000) == pytest.approx(
        stats.time_average(times, times % 7, 2_000_000), rel=1e-12)


requests = st.lists(st.tuples(st.integers(0, 1000), st.integers(-1, 200), st.integers(0, 100)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(rows=requests, cuts=st.lists(st.integers(0, 60), max_size=5), end=st.integers(300, 1400),
       oldest=st.one_of(st.none(), st.integers(0, 1200)), limit=st.sampled_from([0, 0, 50, 200]))
def test_a_device_followed_request_by_request_stalls_as_its_whole_columns_say(rows, cuts, end, oldest, limit):
    """The liveness check follows each device in completion order, a batch at a time, keeping only the
    stretches longer than its threshold: any stall that fails the check is the very stretch the whole
    columns give, and none is found where they give none."""
    submit = np.array([row[0] for row in rows], dtype=np.int64)
    start = np.array([-1 if row[1] < 0 else row[0] + row[1] for row in rows], dtype=np.int64)
    complete = np.where(start >= 0, start, submit) + np.array([row[2] for row in rows], dtype=np.int64)
    order = np.argsort(complete, kind="stable")
    progress = DeviceProgress(end, limit)
    for part in np.split(order, sorted(cut % (len(rows) + 1) for cut in cuts)):
        progress.add(submit[part], start[part], complete[part])
    found, expected = progress.stall(oldest), device_stall(submit, start, complete, oldest, end)
    if limit == 0 or (expected is not None and expected[1] - expected[0] > limit):
        assert found == expected
    else:
        assert found is None or found[1] - found[0] <= limit
