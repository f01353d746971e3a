"""A run as a trace for the Perfetto UI (ui.perfetto.dev): Perfetto's protobuf (`trace.perfetto-trace`, the
default, encoded by `vmsim.trace.perfetto_proto` from the document built here) or Chrome trace-event JSON
(`trace.json`, which chrome://tracing opens too).

Layout: one process per bus (a thread per queue or doorbell logging on it), one process per
component group that logs off-bus (named by the first segment of the dotted name), and one
`requests` process with a thread per driver -> device pair, and one `cores` process with a thread per core
or vCPU, whose slices are the periods it was busy without a gap. Every frame is a zero-length
complete ("X") event named after its message and carrying its bytes in hex; doorbells and other
marks are instant events. Flow arrows (flow v2: `bind_id` with `flow_out` / `flow_in`) follow each
request frame from its tx through its rx to its response's tx and rx, and each I/O request from
submit to completion; each request also spans submit..completion as an async slice.

Timestamps are microseconds as floats (the format's unit); integers of ns divide exactly enough.

The logs come as tables, or as the parquet files a streamed run wrote: then only their first rows are read,
in batches (`earliest_rows`), as many as the trace can hold, so a trace costs the same however long the run.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vmsim.errors import VmsimError
from vmsim.sim.output import SimOutput
from vmsim.trace.perfetto_proto import write_proto_trace

REQUEST_PROCESS = "requests"
CORE_PROCESS = "cores"
RESPONSE_BIT = 0x01
_EVENTS_PER_REQUEST = 4  # submit, complete, async begin, async end


def build_trace(output: SimOutput, events: pa.Table | Path, requests: pa.Table | Path,
                limit: int) -> tuple[dict, dict]:
    """The trace document and a note {events, limit, truncated} for the summary.

    Beyond `limit` timeline events the earliest ones are kept (the start of a run is where
    bring-up happens) and the note says the trace was truncated; metadata events are not counted.
    `events` and `requests` are the log tables or their parquet files.
    """
    if isinstance(events, pa.Table):
        logged = events.num_rows + _EVENTS_PER_REQUEST * requests.num_rows
    else:
        events, requests, logged = earliest_rows(Path(events), Path(requests), limit)
    event_time = events.column("time_ns").to_numpy()
    submit = requests.column("submit_ns").to_numpy()
    complete = requests.column("complete_ns").to_numpy()
    cutoff = _cutoff(event_time, submit, complete, limit)
    kept_rows = np.flatnonzero(event_time < cutoff)
    kept_requests = np.flatnonzero(complete < cutoff)
    tracks = _Tracks()
    timeline = _frame_events(events, kept_rows, tracks)
    timeline += _request_events(requests, kept_requests, tracks, first_flow=len(kept_rows) + 1)
    timeline += _busy_events(output.busy_periods, tracks, cutoff)
    timeline.sort(key=lambda event: event["ts"])
    count = len(timeline)
    truncated = count < logged + _busy_count(output.busy_periods)
    document = {
        "traceEvents": tracks.metadata() + timeline,
        "displayTimeUnit": "ns",
        "otherData": {"scenario": output.scenario, "seed": output.seed, "truncated": truncated},
    }
    return document, {"events": count, "limit": limit, "truncated": truncated}


TRACE_FORMATS = {"perfetto": "trace.perfetto-trace", "json": "trace.json"}
"""Each trace format and the file it is written to: Perfetto's protobuf (the default, smaller and faster)
or Chrome trace-event JSON."""


def check_trace_format(trace_format: str) -> str:
    """The format's file name; an unknown format is a user error, raised before anything is simulated."""
    if trace_format not in TRACE_FORMATS:
        raise VmsimError(f"--trace-format: unknown format {trace_format!r} "
                         f"(one of {', '.join(TRACE_FORMATS)})")
    return TRACE_FORMATS[trace_format]


def write_trace(output: SimOutput, folder: Path, *, events: pa.Table | Path, requests: pa.Table | Path,
                limit: int, trace_format: str = "perfetto") -> dict:
    """Write the trace into `folder` in `trace_format`; returns the note for summary.json, with the
    file's size and the seconds spent building and writing it."""
    path = Path(folder) / check_trace_format(trace_format)
    started = time.perf_counter()
    document, note = build_trace(output, events, requests, limit)
    if trace_format == "json":
        with open(path, "w") as stream:
            json.dump(document, stream, separators=(",", ":"))
    else:
        write_proto_trace(document, path)
    seconds = time.perf_counter() - started
    return {"file": path.name, **note, "bytes": path.stat().st_size, "write_seconds": round(seconds, 3)}


BATCH_ROWS = 65_536


def earliest_rows(events_path: Path, requests_path: Path, limit: int) -> tuple[pa.Table, pa.Table, int]:
    """From a streamed run's parquet files, the rows that can be in a trace of `limit` events: every row
    whose timestamps may fall before the cutoff `_cutoff` finds in the whole logs, and the logs' timeline
    event count.

    The event log is in time order (rows are appended as simulated time advances), so no event after its
    row `limit` is earlier than the cutoff: events are read up to there (and the rows at that row's time),
    requests' submit times are scanned a row group at a time for the ones submitted by then. Stamps after that time cannot change
    the cutoff, which is at most that time.
    """
    events_file = pq.ParquetFile(events_path)
    requests_file = pq.ParquetFile(requests_path)
    logged = events_file.metadata.num_rows + _EVENTS_PER_REQUEST * requests_file.metadata.num_rows
    batches, read, latest = [], 0, np.iinfo(np.int64).max
    for batch in events_file.iter_batches(batch_size=BATCH_ROWS):
        time_ns = batch.column("time_ns").to_numpy()
        if read + batch.num_rows > limit and latest == np.iinfo(np.int64).max:
            latest = int(time_ns[limit - read])
        batches.append(batch.filter(pa.array(time_ns <= latest)))
        read += batch.num_rows
        if time_ns[-1] > latest:
            break
    kept = [requests_file.schema_arrow.empty_table()]
    for group in range(requests_file.num_row_groups):  # every row group's submit times; its rows only if needed
        submit = requests_file.read_row_group(group, columns=["submit_ns"]).column(0).to_numpy()
        early = np.flatnonzero(submit <= latest)
        if early.size:
            kept.append(requests_file.read_row_group(group).take(early))
    events = pa.Table.from_batches(batches, schema=events_file.schema_arrow)
    return events, pa.concat_tables(kept), logged


def _cutoff(event_time, submit, complete, limit: int) -> float:
    """The earliest timestamp that must be left out so at most `limit` timeline events remain."""
    stamps = np.concatenate([event_time, submit, submit, complete, complete])
    if stamps.size <= limit:
        return np.inf
    return float(np.partition(stamps, limit)[limit])


class _Tracks:
    """pid per process name, globally unique tid per (process, thread name), and their "M" events."""

    def __init__(self):
        self.pids: dict[str, int] = {}
        self.tids: dict[tuple[int, str], int] = {}

    def __call__(self, process: str, thread: str) -> tuple[int, int]:
        pid = self.pids.setdefault(process, len(self.pids) + 1)
        tid = self.tids.setdefault((pid, thread), len(self.tids) + 1)
        return pid, tid

    def metadata(self) -> list[dict]:
        events = []
        for name, pid in self.pids.items():
            events.append({"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}})
            events.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
                           "args": {"sort_index": pid}})
        for (pid, name), tid in self.tids.items():
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}})
        return events


def _frame_events(events: pa.Table, rows, tracks: _Tracks) -> list[dict]:
    columns = {name: events.column(name).take(pa.array(rows, pa.int64())).to_pylist()
               for name in events.column_names}
    flows = _frame_flows(columns)
    timeline = []
    for index in range(len(rows)):
        component = columns["component"][index]
        bus = columns["bus"][index]
        pid, tid = tracks(f"bus {bus}" if bus is not None else component.split(".")[0], component)
        ts = columns["time_ns"][index] / 1000
        wire = columns["wire"][index]
        name = columns["msg_name"][index]
        if name is None and columns["msg_size"][index] < 0:  # a mark: doorbell, queue full, ...
            timeline.append({"ph": "i", "s": "t", "name": columns["event"][index], "cat": "mark",
                             "pid": pid, "tid": tid, "ts": ts,
                             "args": {"dev_num": columns["dev_num"][index], "value": columns["value"][index]}})
            continue
        event = {"ph": "X", "name": name or "frame", "cat": "frame", "pid": pid, "tid": tid, "ts": ts,
                 "dur": 0, "args": {
                     "event": columns["event"][index], "dev_num": columns["dev_num"][index],
                     "type": columns["type"][index], "msg_id": columns["msg_id"][index],
                     "token": columns["token"][index], "msg_size": columns["msg_size"][index],
                     "wire": None if wire is None else wire.hex()}}
        flow = flows.get(index)
        if flow is not None:
            event.update(flow)
        timeline.append(event)
    return timeline


def _frame_flows(columns: dict) -> dict[int, dict]:
    """Flow fields per row: each request frame chained tx -> rx -> response tx -> response rx.

    Frames are matched per (bus, dev_num, type, msg_id): a rx takes the oldest frame in flight
    with that key, a response tx answers the oldest request of that (bus, dev_num, msg_id), so
    responses pair with requests in request order. Events (no response) chain tx -> rx only.
    """
    in_flight: dict[tuple, deque] = defaultdict(deque)
    unanswered: dict[tuple, deque] = defaultdict(deque)
    chains: list[list[int]] = []
    for index, event in enumerate(columns["event"]):
        if event not in ("tx", "rx") or columns["msg_name"][index] is None:
            continue
        frame_type = columns["type"][index]
        bus, dev_num, msg_id = columns["bus"][index], columns["dev_num"][index], columns["msg_id"][index]
        key = (bus, dev_num, frame_type, msg_id)
        if event == "tx":
            request_key = (bus, dev_num, frame_type & ~RESPONSE_BIT, msg_id)
            waiting = unanswered[request_key]
            if frame_type & RESPONSE_BIT and waiting:
                chain = waiting.popleft()
            else:
                chain = len(chains)
                chains.append([])
                if not frame_type & RESPONSE_BIT:
                    waiting.append(chain)
            in_flight[key].append(chain)
        else:
            queue = in_flight[key]
            if queue:
                chain = queue.popleft()
            else:
                chain = len(chains)
                chains.append([])
        chains[chain].append(index)
    flows = {}
    for bind_id, chain in enumerate((chain for chain in chains if len(chain) > 1), start=1):
        flows[chain[0]] = {"bind_id": bind_id, "flow_out": True}
        for index in chain[1:-1]:
            flows[index] = {"bind_id": bind_id, "flow_in": True, "flow_out": True}
        flows[chain[-1]] = {"bind_id": bind_id, "flow_in": True}
    return flows


def _busy_events(busy_periods: dict, tracks: _Tracks, cutoff: float) -> list[dict]:
    """One slice per period a core (or vCPU) was busy without a gap, on a track per core under `CORE_PROCESS`,
    for those that start before `cutoff`: where a core's time went next to the frames it handled."""
    timeline = []
    for name, cores in busy_periods.items():
        for number, periods in enumerate(cores):
            if not len(periods.starts):
                continue
            pid, tid = tracks(CORE_PROCESS, f"{name} #{number}" if len(cores) > 1 else name)
            for start, end in zip(periods.starts, periods.ends):
                if start >= cutoff:
                    break
                timeline.append({"ph": "X", "name": "busy", "cat": "cpu", "pid": pid, "tid": tid,
                                 "ts": start / 1000, "dur": (end - start) / 1000})
    return timeline


def _busy_count(busy_periods: dict) -> int:
    """Busy periods the run had, those dropped past the per-core limit included."""
    return sum(len(periods.starts) + periods.dropped for cores in busy_periods.values() for periods in cores)


def _request_events(requests: pa.Table, rows, tracks: _Tracks, first_flow: int) -> list[dict]:
    """Per request: submit and completion instants bound by a flow, and an async span between them."""
    columns = {name: requests.column(name).take(pa.array(rows, pa.int64())).to_pylist()
               for name in requests.column_names}
    timeline = []
    for index in range(len(rows)):
        pid, tid = tracks(REQUEST_PROCESS, f"{columns['driver'][index]} -> {columns['device'][index]}")
        request_id = columns["request_id"][index]
        submit = columns["submit_ns"][index] / 1000
        complete = columns["complete_ns"][index] / 1000
        flow_id = first_flow + index
        args = {name: columns[name][index] for name in
                ("request_id", "vq", "size_bytes", "start_ns", "service_ns", "latency_ns")}
        common = {"cat": "request", "pid": pid, "tid": tid}
        timeline += [
            {"ph": "X", "name": "submit", "ts": submit, "dur": 0, "bind_id": flow_id, "flow_out": True,
             "args": args, **common},
            {"ph": "X", "name": "complete", "ts": complete, "dur": 0, "bind_id": flow_id, "flow_in": True,
             "args": args, **common},
            {"ph": "b", "name": f"request {request_id}", "id": request_id, "ts": submit, **common},
            {"ph": "e", "name": f"request {request_id}", "id": request_id, "ts": complete, **common},
        ]
    return timeline
