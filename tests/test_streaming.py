"""A run written to a folder streams its logs to parquet as it runs (`vmsim.spill.LogSpill`), so its
memory stays flat however long it runs; what it writes and reports must be what a run kept whole gives."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

import vmsim
from vmsim import pipeline
from vmsim.analysis.checks import check_events
from vmsim.files import leftover_folder_pattern
from vmsim.result_folder import open_spill_folder, remove_stale_folders
from vmsim.results import RunResult
from vmsim.scenario import resolved_dict
from vmsim.sim.log import EventLog
from vmsim.spill import LogSpill
from vmsim.trace.perfetto import build_trace

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "stm32mp1-i2c.yaml"
SMALL_BUFFER = 100  # rows a log holds before a row group is written: many groups for 3,569 events, 499 requests


def streamed_run(folder: Path, rows: int = SMALL_BUFFER) -> RunResult:
    """The run `vmsim run` makes, with a small buffer so that the logs stream in many row groups."""
    checked = pipeline.load(SCENARIO)
    spill = LogSpill.next_to(folder, rows)
    ran = pipeline.simulate(checked, spill=spill)
    result = RunResult.of(checked.scenario, ran.output, wall_seconds=ran.wall_seconds, spill=spill)
    result.write(folder, resolved_config=resolved_dict(checked.scenario))
    return result


def without_timings(summary: dict) -> dict:
    return {key: value for key, value in summary.items() if key not in ("wall_seconds", "trace")}


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    return streamed_run(tmp_path_factory.mktemp("streamed") / "r")


@pytest.fixture(scope="module")
def whole():
    return vmsim.run(SCENARIO, write=False)


def test_a_streamed_run_writes_the_tables_and_summary_of_the_same_run_kept_whole(streamed, whole):
    """Same scenario and seed, same results: the logs' rows, their order and every summary number."""
    events = pq.read_table(streamed.path / "events.parquet")
    requests = pq.read_table(streamed.path / "requests.parquet")
    assert events.equals(whole.events_table)
    assert requests.equals(whole.requests_table)
    assert without_timings(streamed.summary) == without_timings(whole.summary)


def test_the_logs_hold_one_buffer_while_the_files_hold_every_row(streamed):
    """Memory stays flat: rows handed to the spill leave the log, which still counts them."""
    events, requests = streamed.output.events, streamed.output.requests
    assert len(events.time) < SMALL_BUFFER and len(requests.request_id) < SMALL_BUFFER
    assert len(events) == pq.ParquetFile(streamed.path / "events.parquet").metadata.num_rows == 3569
    assert pq.ParquetFile(streamed.path / "events.parquet").metadata.num_row_groups == 3569 // SMALL_BUFFER + 1


def test_a_streamed_result_reads_its_tables_back_for_notebooks(streamed, whole):
    """RunResult keeps its API: tables and DataFrames, from the result folder the files moved into."""
    assert streamed.requests.equals(whole.requests)
    assert streamed.events_table.equals(whole.events_table)
    assert not any(entry.name.startswith(".r.partial-") for entry in streamed.path.parent.iterdir())


@pytest.mark.parametrize("limit", [50, 1_000, 100_000])
def test_the_trace_read_back_in_batches_is_the_trace_of_the_whole_tables(streamed, whole, limit):
    """Only the first rows of the files are read, yet the cutoff, the events kept and the truncation note are
    those of the whole logs, whether the trace is cut early, mid-run or not at all."""
    from_files = build_trace(whole.output, streamed.path / "events.parquet", streamed.path / "requests.parquet", limit)
    from_tables = build_trace(whole.output, whole.events_table, whole.requests_table, limit)
    assert from_files == from_tables


def test_check_violations_name_the_rows_of_events_parquet_when_the_log_streamed(tmp_path):
    """The safety checks read only the lifecycle rows the spill kept, yet name run-wide row numbers."""

    def logged(log: EventLog) -> EventLog:
        device, driver = log.components("amp0.dev.device"), log.components("amp0.drv")
        bus = log.add_bus("amp0", "v1")
        for time_ns in range(7):
            log.mark(time_ns, driver, log.events("doorbell.ring"), bus)
        log.mark(10, device, log.events("share.access"), bus, value=3)  # touched before it was shared
        log.mark(11, driver, log.events("doorbell.ring"), bus)
        log.mark(12, driver, log.events("share.request"), bus, value=4)  # never answered
        return log

    kept = logged(EventLog())
    spill = LogSpill(tmp_path, rows=3)
    streamed = EventLog()
    streamed.stream_to(spill._take_events, 3)
    logged(streamed)
    streamed.flush()
    assert spill.check() == check_events(kept)
    assert spill.check()["status"] == "failed"


def test_a_run_that_fails_leaves_no_spill_and_the_previous_result_in_place(tmp_path):
    """An interrupted run drops what it streamed; the result folder written before is untouched."""
    folder = tmp_path / "r"
    streamed_run(folder)
    before = sorted(entry.name for entry in folder.iterdir())

    def interrupt(_fraction):
        raise KeyboardInterrupt

    spill = LogSpill.next_to(folder, SMALL_BUFFER)
    with pytest.raises(KeyboardInterrupt):
        pipeline.simulate(pipeline.load(SCENARIO), progress=interrupt, spill=spill)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["r"]
    assert sorted(entry.name for entry in folder.iterdir()) == before


def test_a_killed_runs_spill_is_a_partial_folder_the_next_write_removes(tmp_path):
    """A crash mid-run leaves its spill named and marked as a killed writer's partial folder."""
    spill, made = open_spill_folder(tmp_path / "results" / "r")
    assert made == [tmp_path / "results"]
    assert leftover_folder_pattern("r").fullmatch(spill.name)
    dead = spill.with_name(spill.name.replace(f"-{spill.name.split('-')[1]}-", "-999999999-"))
    spill.rename(dead)
    assert remove_stale_folders(tmp_path / "results" / "r") == [dead]
