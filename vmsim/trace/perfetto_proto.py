"""A run's trace in Perfetto's own protobuf format (`trace.perfetto-trace`), with the standard library alone.

It carries what the JSON trace document of `vmsim.trace.perfetto.build_trace` carries, event for event:
a `Trace` of `TracePacket`s on one trusted sequence. A process track per JSON process and a thread track
per JSON thread (TrackDescriptor with ProcessDescriptor / ThreadDescriptor), then each timeline event as a
TrackEvent at its timestamp in ns: frames (zero-length slices) and marks as TYPE_INSTANT, a core's busy
periods as TYPE_SLICE_BEGIN / TYPE_SLICE_END on its thread's track, each request's
async span as TYPE_SLICE_BEGIN / TYPE_SLICE_END on a lane track under its thread's process (a span needs a
track of its own while another is open, so lanes are reused as spans end). Flows: every hop but the last
names the flow in `flow_ids`, the last in `terminating_flow_ids`. Arguments become debug annotations.

Field numbers are those of Perfetto's public definitions (github.com/google/perfetto, protos/perfetto/trace/):
trace.proto, trace_packet.proto, track_event/track_descriptor.proto, track_event/process_descriptor.proto,
track_event/thread_descriptor.proto, track_event/track_event.proto, track_event/debug_annotation.proto.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from vmsim.trace.proto import bytes_field, fixed64_field, string_field, varint_field

# trace.proto: Trace
TRACE_PACKET = 1
# trace_packet.proto: TracePacket
PACKET_TIMESTAMP = 8
PACKET_SEQUENCE_ID = 10  # trusted_packet_sequence_id
PACKET_TRACK_EVENT = 11
PACKET_SEQUENCE_FLAGS = 13
PACKET_TRACK_DESCRIPTOR = 60
SEQ_INCREMENTAL_STATE_CLEARED = 1
# track_descriptor.proto: TrackDescriptor
TRACK_UUID = 1
TRACK_NAME = 2
TRACK_PROCESS = 3
TRACK_THREAD = 4
TRACK_PARENT_UUID = 5
# process_descriptor.proto / thread_descriptor.proto
PROCESS_PID = 1
PROCESS_NAME = 6
THREAD_PID = 1
THREAD_TID = 2
THREAD_NAME = 5
# track_event.proto: TrackEvent
EVENT_DEBUG_ANNOTATIONS = 4
EVENT_TYPE = 9
EVENT_TRACK_UUID = 11
EVENT_CATEGORIES = 22
EVENT_NAME = 23
EVENT_FLOW_IDS = 47
EVENT_TERMINATING_FLOW_IDS = 48
TYPE_SLICE_BEGIN = 1
TYPE_SLICE_END = 2
TYPE_INSTANT = 3
# debug_annotation.proto: DebugAnnotation
ANNOTATION_BOOL = 2
ANNOTATION_INT = 4
ANNOTATION_STRING = 6
ANNOTATION_NAME = 10

SEQUENCE_ID = 1
_SEQUENCE = varint_field(PACKET_SEQUENCE_ID, SEQUENCE_ID)


def write_proto_trace(document: dict, path: Path) -> None:
    """Write the trace document as a Perfetto protobuf trace."""
    with open(path, "wb") as stream:
        stream.writelines(bytes_field(TRACE_PACKET, packet) for packet in trace_packets(document))


def trace_packets(document: dict) -> Iterator[bytes]:
    """The encoded TracePackets of a trace document: its tracks first, then its timeline in order."""
    events = document["traceEvents"]
    process_names = {event["pid"]: event["args"]["name"] for event in events
                     if event["name"] == "process_name" and event["ph"] == "M"}
    thread_names = {(event["pid"], event["tid"]): event["args"]["name"] for event in events
                    if event["name"] == "thread_name" and event["ph"] == "M"}
    uuids = _Uuids()
    first = True
    for pid, name in process_names.items():
        process = varint_field(PROCESS_PID, pid) + string_field(PROCESS_NAME, name)
        yield _descriptor(uuids.process(pid), bytes_field(TRACK_PROCESS, process), first=first)
        first = False
    for (pid, tid), name in thread_names.items():
        thread = (varint_field(THREAD_PID, pid) + varint_field(THREAD_TID, tid)
                  + string_field(THREAD_NAME, name))
        yield _descriptor(uuids.thread(tid), bytes_field(TRACK_THREAD, thread))
    lanes = _Lanes(uuids, thread_names)
    for event in events:
        phase = event["ph"]
        if phase == "M":
            continue
        if phase == "b":
            track, new_lane = lanes.open(event)
            if new_lane is not None:
                yield new_lane
            yield _track_event(event, track, TYPE_SLICE_BEGIN)
        elif phase == "e":
            yield _track_event(event, lanes.close(event), TYPE_SLICE_END)
        elif event.get("dur"):  # a core's busy period: a slice on its thread's track
            track = uuids.thread(event["tid"])
            yield _track_event(event, track, TYPE_SLICE_BEGIN)
            yield _track_event({"ts": event["ts"] + event["dur"]}, track, TYPE_SLICE_END)
        else:  # a zero-length "X" (a frame) or an "i" (a mark)
            yield _track_event(event, uuids.thread(event["tid"]), TYPE_INSTANT)


class _Uuids:
    """Track uuids: processes, threads and request lanes numbered apart (pids and tids are small)."""

    def __init__(self):
        self.count = 0
        self.by_key: dict[tuple, int] = {}

    def _of(self, key: tuple) -> int:
        if key not in self.by_key:
            self.count += 1
            self.by_key[key] = self.count
        return self.by_key[key]

    def process(self, pid: int) -> int:
        return self._of(("process", pid))

    def thread(self, tid: int) -> int:
        return self._of(("thread", tid))

    def lane(self, tid: int, lane: int) -> int:
        return self._of(("lane", tid, lane))


class _Lanes:
    """Tracks for async spans: per thread, the first lane free when a span begins (described on first use)."""

    def __init__(self, uuids: _Uuids, thread_names: dict):
        self.uuids = uuids
        self.thread_names = thread_names
        self.busy: dict[int, list[bool]] = defaultdict(list)
        self.open_spans: dict[tuple, int] = {}

    def open(self, event: dict) -> tuple[int, bytes | None]:
        tid = event["tid"]
        busy = self.busy[tid]
        lane = next((index for index, taken in enumerate(busy) if not taken), len(busy))
        new_lane = None
        if lane == len(busy):
            busy.append(False)
            name = f"{self.thread_names[(event['pid'], tid)]} in flight {lane + 1}"
            new_lane = _descriptor(self.uuids.lane(tid, lane), string_field(TRACK_NAME, name)
                                   + varint_field(TRACK_PARENT_UUID, self.uuids.process(event["pid"])))
        busy[lane] = True
        self.open_spans[(tid, event["id"])] = lane
        return self.uuids.lane(tid, lane), new_lane

    def close(self, event: dict) -> int:
        tid = event["tid"]
        lane = self.open_spans.pop((tid, event["id"]))
        self.busy[tid][lane] = False
        return self.uuids.lane(tid, lane)


def _descriptor(uuid: int, fields: bytes, *, first: bool = False) -> bytes:
    """A TrackDescriptor packet; the first packet of the sequence also marks its incremental state fresh."""
    flags = varint_field(PACKET_SEQUENCE_FLAGS, SEQ_INCREMENTAL_STATE_CLEARED) if first else b""
    return (_SEQUENCE + flags
            + bytes_field(PACKET_TRACK_DESCRIPTOR, varint_field(TRACK_UUID, uuid) + fields))


def _track_event(event: dict, track: int, event_type: int) -> bytes:
    body = varint_field(EVENT_TYPE, event_type) + varint_field(EVENT_TRACK_UUID, track)
    if "cat" in event:
        body += _repeated_string(EVENT_CATEGORIES, event["cat"])
    if event_type != TYPE_SLICE_END:
        body += _repeated_string(EVENT_NAME, event["name"])
    for name, value in event.get("args", {}).items():
        if value is not None:
            annotation = _repeated_string(ANNOTATION_NAME, name) + _value(value)
            body += bytes_field(EVENT_DEBUG_ANNOTATIONS, annotation)
    flow = event.get("bind_id")
    if flow is not None:
        body += fixed64_field(EVENT_FLOW_IDS if event.get("flow_out") else EVENT_TERMINATING_FLOW_IDS, flow)
    # JSON counts microseconds as floats of ns / 1000: exact back to ns below 2**52 ns (52 days).
    timestamp = round(event["ts"] * 1000)
    return _SEQUENCE + varint_field(PACKET_TIMESTAMP, timestamp) + bytes_field(PACKET_TRACK_EVENT, body)


@lru_cache(maxsize=4096)
def _repeated_string(number: int, text: str) -> bytes:
    """A string field whose text recurs (names of messages, categories, arguments): encoded once."""
    return string_field(number, text)


def _value(value) -> bytes:
    """A debug annotation's value field."""
    if isinstance(value, bool):
        return varint_field(ANNOTATION_BOOL, value)
    if isinstance(value, int):
        return varint_field(ANNOTATION_INT, value)
    return string_field(ANNOTATION_STRING, str(value))
