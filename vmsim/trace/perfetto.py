"""A run as a trace for the Perfetto UI (ui.perfetto.dev): Perfetto's protobuf (`trace.perfetto-trace`, the
default, encoded by `vmsim.trace.perfetto_proto`) or Chrome trace-event JSON (`trace.json`, which
chrome://tracing opens too), both written from the columns of one plan (`vmsim.trace.plan`).

Layout: one process per bus (a thread per queue or doorbell logging on it), one process per
component group that logs off-bus (named by the first segment of the dotted name), and one
`requests` process with a thread per driver -> device pair, and one `cores` process with a thread per core
or vCPU, whose slices are the periods it was busy without a gap. Every frame is a zero-length
complete ("X") event named after its message and carrying its bytes in hex; doorbells and other
marks are instant events. Flow arrows (flow v2: `bind_id` with `flow_out` / `flow_in`) follow each
request frame from its tx through its rx to its response's tx and rx, and each I/O request from
submit to completion; each request also spans submit..completion as an async slice.

Timestamps are microseconds as floats (the format's unit); integers of ns divide exactly enough.

The JSON file is written a line of text per event from the plan's columns, the encodings of repeated
strings cached; it is the text `json.dump` gives the document `build_trace` returns (a test keeps the two
equal).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pyarrow as pa

from vmsim.errors import VmsimError
from vmsim.sim.output import SimOutput
from vmsim.trace.plan import (
    BEGIN,
    BUSY,
    COMPLETE,
    FRAME,
    FRAME_ARGS,
    MARK_ARGS,
    REQUEST_ARGS,
    SUBMIT,
    TracePlan,
    plan_trace,
)

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
    plan = plan_trace(output, events, requests, limit)
    if trace_format == "json":
        with open(path, "w") as stream:
            write_json_trace(plan, stream)
    else:
        from vmsim.trace.perfetto_proto import write_proto_trace

        write_proto_trace(plan, path)
    seconds = time.perf_counter() - started
    return {"file": path.name, **_note(plan, limit), "bytes": path.stat().st_size,
            "write_seconds": round(seconds, 3)}


def build_trace(output: SimOutput, events: pa.Table | Path, requests: pa.Table | Path,
                limit: int) -> tuple[dict, dict]:
    """The trace document (Chrome trace events, as `trace.json` holds it) and a note {events, limit,
    truncated} for the summary.

    Beyond `limit` timeline events the earliest ones are kept (the start of a run is where
    bring-up happens) and the note says the trace was truncated; metadata events are not counted.
    `events` and `requests` are the log tables or their parquet files.
    """
    plan = plan_trace(output, events, requests, limit)
    return json.loads(_json_text(plan)), _note(plan, limit)


def _note(plan: TracePlan, limit: int) -> dict:
    return {"events": plan.events, "limit": limit, "truncated": plan.truncated}


def write_json_trace(plan: TracePlan, stream) -> None:
    """Write the plan as Chrome trace-event JSON (compact: no spaces), a batch of events at a time."""
    other = json.dumps({"scenario": plan.scenario, "seed": plan.seed, "truncated": plan.truncated},
                       separators=(",", ":"))
    stream.write('{"traceEvents":[')
    for index, chunk in enumerate(_json_chunks(plan)):
        stream.write(("," if index else "") + ",".join(chunk))
    stream.write(f'],"displayTimeUnit":"ns","otherData":{other}}}')


def _json_text(plan: TracePlan) -> str:
    text = io.StringIO()
    write_json_trace(plan, text)
    return text.getvalue()


CHUNK_EVENTS = 65_536


def _json_chunks(plan: TracePlan):
    """The events' JSON texts, metadata first, in lists of at most `CHUNK_EVENTS`."""
    text = _JsonValues()
    metadata = []
    for pid, name in plan.processes:
        metadata.append(f'{{"ph":"M","name":"process_name","pid":{pid},"tid":0,"args":{{"name":{text(name)}}}}}')
        metadata.append(f'{{"ph":"M","name":"process_sort_index","pid":{pid},"tid":0,"args":{{"sort_index":{pid}}}}}')
    for pid, tid, name in plan.threads:
        metadata.append(f'{{"ph":"M","name":"thread_name","pid":{pid},"tid":{tid},"args":{{"name":{text(name)}}}}}')
    if metadata:
        yield metadata
    frames, requests, busy = plan.frames, plan.requests, plan.busy
    frame_args = [frames[name] for name in FRAME_ARGS]
    mark_args = [frames[name] for name in MARK_ARGS]
    request_args = [requests[name] for name in REQUEST_ARGS]
    flow_suffix = {(False, True): ',"flow_out":true}', (True, True): ',"flow_in":true,"flow_out":true}',
                   (True, False): ',"flow_in":true}'}
    chunk = []
    for kind, row, ns in zip(plan.kinds.tolist(), plan.rows.tolist(), plan.times.tolist()):
        ts = repr(ns / 1000)
        if kind == FRAME:
            pid, tid, name = frames["pid"][row], frames["tid"][row], text(frames["name"][row])
            if frames["mark"][row]:
                args = ",".join(f'"{key}":{text(column[row])}' for key, column in zip(MARK_ARGS, mark_args))
                chunk.append(f'{{"ph":"i","s":"t","name":{name},"cat":"mark","pid":{pid},"tid":{tid},"ts":{ts},'
                             f'"args":{{{args}}}}}')
            else:
                args = ",".join(f'"{key}":{text(column[row])}' for key, column in zip(FRAME_ARGS, frame_args))
                bind = frames["bind"][row]
                flow = f',"bind_id":{bind}' + flow_suffix[frames["flow_in"][row], frames["flow_out"][row]] \
                    if bind else "}"
                chunk.append(f'{{"ph":"X","name":{name},"cat":"frame","pid":{pid},"tid":{tid},"ts":{ts},"dur":0,'
                             f'"args":{{{args}}}{flow}')
        elif kind == BUSY:
            chunk.append(f'{{"ph":"X","name":"busy","cat":"cpu","pid":{busy["pid"][row]},"tid":{busy["tid"][row]},'
                         f'"ts":{ts},"dur":{(busy["end"][row] - busy["start"][row]) / 1000!r}}}')
        else:
            where = f'"cat":"request","pid":{requests["pid"][row]},"tid":{requests["tid"][row]}}}'
            if kind == SUBMIT or kind == COMPLETE:
                args = ",".join(f'"{key}":{text(column[row])}' for key, column in zip(REQUEST_ARGS, request_args))
                name, hop = ("submit", "flow_out") if kind == SUBMIT else ("complete", "flow_in")
                chunk.append(f'{{"ph":"X","name":"{name}","ts":{ts},"dur":0,"bind_id":{requests["flow"][row]},'
                             f'"{hop}":true,"args":{{{args}}},{where}')
            else:
                request_id = text(requests["request_id"][row])
                chunk.append(f'{{"ph":"{"b" if kind == BEGIN else "e"}","name":"request {request_id}",'
                             f'"id":{request_id},"ts":{ts},{where}')
        if len(chunk) == CHUNK_EVENTS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _JsonValues(dict):
    """A value's JSON text, worked out once per distinct value (names and arguments recur)."""

    def __call__(self, value) -> str:
        text = self.get(value)
        if text is None:
            text = self[value] = json.dumps(value)
        return text
