"""What a run's trace shows, as columns: the plan both trace formats are written from.

`plan_trace` chooses the timeline events (the earliest `limit` of the run's frames, marks, requests and
busy periods), numbers the tracks, chains the flows and puts the events in time order, once; each format
then encodes the plan a row at a time with the encodings of repeated values cached, never building an
object per event (`vmsim.trace.perfetto` for the JSON document and file, `vmsim.trace.perfetto_proto` for
the protobuf).

The timeline is three tables (frames and marks, requests, busy periods) and its order: per event in time
order, its kind and its row in that kind's table. A request is four events (submit and completion instants
bound by a flow, and an async span's begin and end); a busy period is one slice.

The logs come as tables, or as the parquet files a streamed run wrote: then only their first rows are read,
in batches (`earliest_rows`), as many as the trace can hold, so a trace costs the same however long the run.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vmsim.sim.output import SimOutput

REQUEST_PROCESS = "requests"
CORE_PROCESS = "cores"
RESPONSE_BIT = 0x01
EVENTS_PER_REQUEST = 4  # submit, complete, async begin, async end

FRAME, SUBMIT, COMPLETE, BEGIN, END, BUSY = range(6)
"""The kinds of timeline event: a frame or mark (a row of the event log), a request's four, a busy period."""

FRAME_ARGS = ("event", "dev_num", "type", "msg_id", "token", "msg_size", "wire")
MARK_ARGS = ("dev_num", "value")
REQUEST_ARGS = ("request_id", "vq", "size_bytes", "start_ns", "service_ns", "latency_ns")
"""The arguments each event carries, in the order both formats list them."""


@dataclass
class TracePlan:
    """The timeline events of a trace, as columns (Python lists, read once from the tables).

    `frames`: per event-log row kept, `pid`, `tid`, `mark` (a doorbell or other mark, not a frame), `name`,
    the `FRAME_ARGS` and `value` (`wire` as hex), and its flow: `bind` (0 for none), `flow_in`, `flow_out`.
    `requests`: per request kept, `pid`, `tid`, `submit_ns`, `complete_ns`, the `REQUEST_ARGS` and `flow`.
    `busy`: per busy period kept, `pid`, `tid`, `start`, `end`. `kinds`, `rows` and `times` (ns) are the
    timeline in time order (numpy arrays).
    """

    scenario: str
    seed: int
    truncated: bool
    processes: list[tuple[int, str]]
    threads: list[tuple[int, int, str]]
    frames: dict[str, list]
    requests: dict[str, list]
    busy: dict[str, list]
    kinds: np.ndarray
    rows: np.ndarray
    times: np.ndarray

    @property
    def events(self) -> int:
        return len(self.kinds)


def plan_trace(output: SimOutput, events: pa.Table | Path, requests: pa.Table | Path, limit: int) -> TracePlan:
    """The plan of a trace of at most `limit` timeline events.

    Beyond `limit` the earliest ones are kept (the start of a run is where bring-up happens) and the plan
    says the trace was truncated. `events` and `requests` are the log tables or their parquet files.
    """
    if isinstance(events, pa.Table):
        logged = events.num_rows + EVENTS_PER_REQUEST * requests.num_rows
    else:
        events, requests, logged = earliest_rows(Path(events), Path(requests), limit)
    event_time = events.column("time_ns").to_numpy()
    submit = requests.column("submit_ns").to_numpy()
    complete = requests.column("complete_ns").to_numpy()
    cutoff = _cutoff(event_time, submit, complete, limit)
    kept_rows = np.flatnonzero(event_time < cutoff)
    kept_requests = np.flatnonzero(complete < cutoff)
    tracks = _Tracks()
    frames = _frame_columns(events, kept_rows, tracks)
    request_columns = _request_columns(requests, kept_requests, tracks, first_flow=len(kept_rows) + 1)
    busy = _busy_columns(output.busy_periods, tracks, cutoff)
    kept_submit, kept_complete = submit[kept_requests], complete[kept_requests]
    times = np.concatenate([event_time[kept_rows],
                            np.stack([kept_submit, kept_complete, kept_submit, kept_complete], axis=1).ravel(),
                            np.asarray(busy["start"], dtype=np.int64)]).astype(np.int64, copy=False)
    kinds = np.concatenate([np.full(len(kept_rows), FRAME), np.tile([SUBMIT, COMPLETE, BEGIN, END], len(kept_requests)),
                            np.full(len(busy["start"]), BUSY)])
    rows = np.concatenate([np.arange(len(kept_rows)), np.repeat(np.arange(len(kept_requests)), EVENTS_PER_REQUEST),
                           np.arange(len(busy["start"]))])
    order = np.argsort(times, kind="stable")
    truncated = len(order) < logged + _busy_count(output.busy_periods)
    return TracePlan(output.scenario, output.seed, truncated, tracks.processes(), tracks.threads(), frames,
                     request_columns, busy, kinds[order], rows[order], times[order])


BATCH_ROWS = 65_536


def earliest_rows(events_path: Path, requests_path: Path, limit: int) -> tuple[pa.Table, pa.Table, int]:
    """From a streamed run's parquet files, the rows that can be in a trace of `limit` events: every row
    whose timestamps may fall before the cutoff `_cutoff` finds in the whole logs, and the logs' timeline
    event count.

    The event log is in time order (rows are appended as simulated time advances), so no event after its
    row `limit` is earlier than the cutoff: events are read up to there (and the rows at that row's time),
    requests' submit times are scanned a row group at a time for the ones submitted by then. Stamps after
    that time cannot change the cutoff, which is at most that time.
    """
    events_file = pq.ParquetFile(events_path)
    requests_file = pq.ParquetFile(requests_path)
    logged = events_file.metadata.num_rows + EVENTS_PER_REQUEST * requests_file.metadata.num_rows
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
    """pid per process name and globally unique tid per (process, thread name), numbered in order of use."""

    def __init__(self):
        self.pids: dict[str, int] = {}
        self.tids: dict[tuple[int, str], int] = {}

    def __call__(self, process: str, thread: str) -> tuple[int, int]:
        pid = self.pids.setdefault(process, len(self.pids) + 1)
        tid = self.tids.setdefault((pid, thread), len(self.tids) + 1)
        return pid, tid

    def processes(self) -> list[tuple[int, str]]:
        return [(pid, name) for name, pid in self.pids.items()]

    def threads(self) -> list[tuple[int, int, str]]:
        return [(pid, tid, name) for (pid, name), tid in self.tids.items()]


def _taken(table: pa.Table, rows: np.ndarray, names) -> dict[str, list]:
    """Columns of `table` at `rows`, as lists."""
    taken = table.select(list(names)).take(pa.array(rows, pa.int64()))
    return {name: taken.column(name).to_pylist() for name in names}


def _frame_columns(events: pa.Table, rows: np.ndarray, tracks: _Tracks) -> dict[str, list]:
    """The frames and marks of the kept event-log rows: each on the thread of its component, in the process
    of its bus (or of its component group off-bus)."""
    columns = _taken(events, rows, ("component", "bus", "msg_name", *FRAME_ARGS, "value"))
    places: dict[tuple, tuple[int, int]] = {}
    pids, tids = [], []
    for component, bus in zip(columns["component"], columns["bus"]):
        place = places.get((component, bus))
        if place is None:
            process = f"bus {bus}" if bus is not None else component.split(".")[0]
            place = places[(component, bus)] = tracks(process, component)
        pids.append(place[0])
        tids.append(place[1])
    marks = [name is None and size < 0 for name, size in zip(columns["msg_name"], columns["msg_size"])]
    columns["pid"], columns["tid"], columns["mark"] = pids, tids, marks
    columns["name"] = [event if mark else name or "frame"
                       for event, name, mark in zip(columns["event"], columns["msg_name"], marks)]
    columns["wire"] = [None if wire is None else wire.hex() for wire in columns["wire"]]
    columns.update(_frame_flows(columns))
    return columns


def _frame_flows(columns: dict) -> dict[str, list]:
    """Flow columns per row (`bind`, 0 for none; `flow_in`; `flow_out`): each request frame chained
    tx -> rx -> response tx -> response rx.

    Frames are matched per (bus, dev_num, type, msg_id): a rx takes the oldest frame in flight
    with that key, a response tx answers the oldest request of that (bus, dev_num, msg_id), so
    responses pair with requests in request order. Events (no response) chain tx -> rx only.
    """
    in_flight: dict[tuple, deque] = defaultdict(deque)
    unanswered: dict[tuple, deque] = defaultdict(deque)
    chains: list[list[int]] = []
    hops = zip(columns["event"], columns["msg_name"], columns["bus"], columns["dev_num"], columns["type"],
               columns["msg_id"])
    for index, (event, name, bus, dev_num, frame_type, msg_id) in enumerate(hops):
        if name is None or event not in ("tx", "rx"):
            continue
        key = (bus, dev_num, frame_type, msg_id)
        if event == "tx":
            waiting = unanswered[(bus, dev_num, frame_type & ~RESPONSE_BIT, msg_id)]
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
    rows = len(columns["event"])
    bind, flow_in, flow_out = [0] * rows, [False] * rows, [False] * rows
    for bind_id, chain in enumerate((chain for chain in chains if len(chain) > 1), start=1):
        for index in chain:
            bind[index] = bind_id
            flow_in[index] = flow_out[index] = True
        flow_in[chain[0]] = False
        flow_out[chain[-1]] = False
    return {"bind": bind, "flow_in": flow_in, "flow_out": flow_out}


def _request_columns(requests: pa.Table, rows: np.ndarray, tracks: _Tracks, first_flow: int) -> dict[str, list]:
    """The kept requests, each on the thread of its driver -> device pair, its flow numbered after the frames'."""
    columns = _taken(requests, rows, ("driver", "device", "submit_ns", "complete_ns", *REQUEST_ARGS))
    places: dict[tuple, tuple[int, int]] = {}
    pids, tids = [], []
    for driver, device in zip(columns["driver"], columns["device"]):
        place = places.get((driver, device))
        if place is None:
            place = places[(driver, device)] = tracks(REQUEST_PROCESS, f"{driver} -> {device}")
        pids.append(place[0])
        tids.append(place[1])
    columns["pid"], columns["tid"] = pids, tids
    columns["flow"] = list(range(first_flow, first_flow + len(rows)))
    return columns


def _busy_columns(busy_periods: dict, tracks: _Tracks, cutoff: float) -> dict[str, list]:
    """The periods a core (or vCPU) was busy without a gap that start before `cutoff`, on a track per core
    under `CORE_PROCESS`: where a core's time went next to the frames it handled."""
    columns = {"pid": [], "tid": [], "start": [], "end": []}
    for name, cores in busy_periods.items():
        for number, periods in enumerate(cores):
            if not len(periods.starts):
                continue
            pid, tid = tracks(CORE_PROCESS, f"{name} #{number}" if len(cores) > 1 else name)
            kept = int(np.searchsorted(np.asarray(periods.starts, dtype=np.int64), cutoff, side="left"))
            columns["pid"] += [pid] * kept
            columns["tid"] += [tid] * kept
            columns["start"] += list(periods.starts[:kept])
            columns["end"] += list(periods.ends[:kept])
    return columns


def _busy_count(busy_periods: dict) -> int:
    """Busy periods the run had, those dropped past the per-core limit included."""
    return sum(len(periods.starts) + periods.dropped for cores in busy_periods.values() for periods in cores)
