"""A run written to a folder streams its logs to parquet while it runs, so memory stays flat however long
the run: `LogSpill` is the sink `vmsim.pipeline.simulate` gives the event and request logs
(`EventLog.stream_to`). Each buffer of `FLUSH_ROWS` rows becomes one row group of `events.parquet` or
`requests.parquet` in a spill folder (encoded and compressed by a short-lived thread while the simulation
goes on, which then feeds the events to the conformance monitor), and the buffer is emptied. What the summary needs later is read back
column by column (`summary_columns`), never kept for the whole run; the few lifecycle rows the safety checks
read (sharing steps) are kept as they pass, with their run-wide row numbers. The spill folder is a partial
folder of the result (`vmsim.result_folder.open_spill_folder`): a crash leaves the previous result in place
and the spill to the next write's clean-up; a finished run's files move into the result folder as it is
written (`RunResult.write`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vmsim.analysis.checks import LIFECYCLE, check_events
from vmsim.analysis.conformance import ConformanceMonitor
from vmsim.analysis.conformance.command import EVENT_COLUMNS
from vmsim.analysis.conformance.frames import chunk_from_arrow
from vmsim.result_folder import discard_spill_folder, open_spill_folder
from vmsim.sim.log import EVENT_ROW, REQUEST_ROW, Column, EventLog, RequestLog

FLUSH_ROWS = 65_536
"""Rows a log buffers before it hands them over: one parquet row group (a few MB of memory at most)."""

EVENTS_FILE = "events.parquet"
REQUESTS_FILE = "requests.parquet"
SUMMARY_REQUEST_COLUMNS = ("submit_ns", "start_ns", "complete_ns", "latency_ns", "device")
"""The requests columns the summary reads back (device as a dictionary column: codes, not strings)."""
CHECKED_EVENT_COLUMNS = ("time_ns", "component", "event", "bus", "dev_num", "value")


def arrow_schema(row: tuple[Column, ...]) -> pa.Schema:
    """The parquet schema of a log row declared in `vmsim.sim.log`."""
    return pa.schema([(column.name, getattr(pa, column.arrow_type)()) for column in row])


EVENT_SCHEMA = arrow_schema(EVENT_ROW)
REQUEST_SCHEMA = arrow_schema(REQUEST_ROW)


class _RowGroupWriter:
    """One parquet file written a row group per table handed over, each by a short-lived thread of its own:
    the simulation goes on while the row group is encoded and compressed (pyarrow releases the GIL for that).
    One table of the file is written at a time (the next waits for it), so memory stays bounded and the rows
    keep their order; each file has its own writer, so the events and requests files never wait for each
    other. No thread outlives its table, so none is left running when a writer is dropped half-way. A
    failure in a thread is raised by the next call."""

    def __init__(self, path: Path, schema: pa.Schema, rows: int):
        self.path = path
        self.schema = schema
        self.rows = rows
        self.writer: pq.ParquetWriter | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def write(self, table: pa.Table, then: Callable[[], None] | None = None) -> None:
        """Write `table` as the next row group, then run `then` in the same thread."""
        self._join()
        self.thread = threading.Thread(target=self._write, args=(table, then), name="vmsim-parquet-writer",
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Write what waits and close the file (one with no rows if none was handed over)."""
        self._join()
        (self.writer or pq.ParquetWriter(self.path, self.schema)).close()
        self.writer = None

    def abandon(self) -> None:
        """Stop writing and close the file, whatever state it is in (the run failed or is done)."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError:
                pass
            self.writer = None

    def _write(self, table: pa.Table, then: Callable[[], None] | None) -> None:
        try:
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.path, self.schema)
            self.writer.write_table(table, row_group_size=self.rows)
            if then is not None:
                then()
        except BaseException as exc:  # noqa: BLE001 - raised in the simulating thread by its next call
            self.error = exc

    def _join(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error


class LogSpill:
    """The parquet files of one run's logs, written a row group at a time as the logs fill."""

    def __init__(self, folder: Path, rows: int = FLUSH_ROWS):
        self.folder = self.spill_folder = Path(folder)
        self.made_parents: list[Path] = []  # made for the spill folder: removed with it when left empty
        self.rows = rows
        self.events_path = self.folder / EVENTS_FILE
        self.requests_path = self.folder / REQUESTS_FILE
        self.seconds = 0.0  # wall time spent writing: the pipeline keeps it out of the simulation's time
        self._writers = (_RowGroupWriter(self.events_path, EVENT_SCHEMA, rows),
                         _RowGroupWriter(self.requests_path, REQUEST_SCHEMA, rows))
        self._lifecycle: list[pa.Table] = []
        self._lifecycle_rows: list[np.ndarray] = []
        self._lifecycle_names = pa.array(LIFECYCLE)
        self.conformance = ConformanceMonitor()  # fed each events row group by the writer's thread, once written
        self._layouts_inferred: dict[str, str] = {}

    @classmethod
    def next_to(cls, result_folder: Path, rows: int = FLUSH_ROWS) -> LogSpill:
        """A spill in a new partial folder of `result_folder` (see the module docstring)."""
        folder, parents = open_spill_folder(result_folder)
        spill = cls(folder, rows)
        spill.made_parents = parents
        return spill

    def __getstate__(self) -> dict:
        """A spill handed to another process (a plotting child) only reads its files: the writers and the monitor
        stay here."""
        return {**self.__dict__, "_writers": (), "conformance": None}

    def discard(self) -> None:
        """Close the files and remove the spill folder: the run failed, or its files moved to the result."""
        for writer in self._writers:
            writer.abandon()
        discard_spill_folder(self.spill_folder, self.made_parents)

    def attach(self, events: EventLog, requests: RequestLog) -> None:
        events.stream_to(self._take_events, self.rows)
        requests.stream_to(self._take_requests, self.rows)

    def finish(self, events: EventLog, requests: RequestLog) -> None:
        """Hand over the rows still buffered and close both files (an empty log gives a file with no rows)."""
        events.flush()
        requests.flush()
        started = time.perf_counter()
        for writer in self._writers:
            writer.close()
        self.seconds += time.perf_counter() - started

    def _take_events(self, log: EventLog, first_row: int) -> None:
        started = time.perf_counter()
        columns = log.columns(with_wire=False)
        offsets, present, data = log.wire_parts()  # the binary column straight from the frame bytes
        columns["wire"] = pa.Array.from_buffers(
            pa.binary(), len(present), [pa.py_buffer(np.packbits(present, bitorder="little")),
                                        pa.py_buffer(offsets), pa.py_buffer(data)],
            null_count=len(present) - int(present.sum()))
        table = pa.table(columns, schema=EVENT_SCHEMA)
        layouts = {log.buses.names[code]: layout for code, layout in log.bus_layouts.items()}
        self._writers[0].write(table, then=partial(self._monitor, table, first_row, layouts))
        lifecycle = pc.is_in(table.column("event"), value_set=self._lifecycle_names)
        if pc.any(lifecycle).as_py():
            self._lifecycle.append(table.select(CHECKED_EVENT_COLUMNS).filter(lifecycle))
            self._lifecycle_rows.append(first_row + np.flatnonzero(lifecycle.to_numpy(zero_copy_only=False)))
        self.seconds += time.perf_counter() - started

    def _monitor(self, table: pa.Table, first_row: int, layouts: dict[str, str]) -> None:
        """Feed a row group of events to the conformance monitor (in the writer's thread, after writing it)."""
        self.conformance.feed(chunk_from_arrow(table.select(EVENT_COLUMNS), first_row, layouts,
                                               self._layouts_inferred))

    def _take_requests(self, log: RequestLog, first_row: int) -> None:
        started = time.perf_counter()
        self._writers[1].write(pa.table(log.columns(), schema=REQUEST_SCHEMA))
        self.seconds += time.perf_counter() - started

    def check(self) -> dict:
        """The safety checks (`vmsim.analysis.checks`) over the lifecycle rows kept as the log streamed, their
        violations naming events.parquet's row numbers as for a log kept whole."""
        if not self._lifecycle:
            return check_events({name: [] for name in CHECKED_EVENT_COLUMNS})
        table = pa.concat_tables(self._lifecycle)
        rows = np.concatenate(self._lifecycle_rows)
        verdict = check_events({name: table.column(name).to_numpy(zero_copy_only=False)
                                for name in table.column_names})
        for entry in verdict["checks"]:
            for violation in entry["violations"]:
                violation["rows"] = [int(rows[row]) for row in violation["rows"]]
        return verdict

    def summary_columns(self) -> pa.Table:
        """The requests columns the summary reads, read back from the file."""
        return pq.read_table(self.requests_path, columns=list(SUMMARY_REQUEST_COLUMNS),
                             read_dictionary=["device"])

    def events_table(self) -> pa.Table:
        return pq.read_table(self.events_path)

    def requests_table(self) -> pa.Table:
        return pq.read_table(self.requests_path)

    def moved_to(self, folder: Path) -> None:
        """The files now live in `folder` (the result folder they were moved into)."""
        self.folder = Path(folder)
        self.events_path = self.folder / EVENTS_FILE
        self.requests_path = self.folder / REQUESTS_FILE
