"""A run's trace in Perfetto's own protobuf format (`trace.perfetto-trace`), with the standard library alone.

It carries what the JSON trace of the same plan (`vmsim.trace.plan`) carries, event for event: a `Trace` of
`TracePacket`s on one trusted sequence. A process track per JSON process and a thread track per JSON thread
(TrackDescriptor with ProcessDescriptor / ThreadDescriptor), then each timeline event as a TrackEvent at its
timestamp in ns: frames (zero-length slices) and marks as TYPE_INSTANT, a core's busy periods as
TYPE_SLICE_BEGIN / TYPE_SLICE_END on its thread's track, each request's async span as TYPE_SLICE_BEGIN /
TYPE_SLICE_END on a lane track under its thread's process (a span needs a track of its own while another is
open, so lanes are reused as spans end). Flows: every hop but the last names the flow in `flow_ids`, the
last in `terminating_flow_ids`. Arguments become debug annotations.

Encoded from the plan's columns a packet at a time: the part of a TrackEvent fixed by its track, category
and name is encoded once per combination, a debug annotation once per distinct (argument, value), and the
timestamps' varints all at once with numpy.

Field numbers are those of Perfetto's public definitions (github.com/google/perfetto, protos/perfetto/trace/):
trace.proto, trace_packet.proto, track_event/track_descriptor.proto, track_event/process_descriptor.proto,
track_event/thread_descriptor.proto, track_event/track_event.proto, track_event/debug_annotation.proto.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from heapq import heappop, heappush
from itertools import chain
from pathlib import Path

import numpy as np

from vmsim.trace.plan import BEGIN, BUSY, COMPLETE, END, FRAME, FRAME_ARGS, REQUEST_ARGS, SUBMIT, TracePlan
from vmsim.trace.proto import (
    FIXED64,
    LENGTH_DELIMITED,
    SMALL_VARINTS,
    VARINT,
    bytes_field,
    key,
    string_field,
    varint,
    varint_field,
)

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
_PACKET_KEY = key(TRACE_PACKET, LENGTH_DELIMITED)
_TIMESTAMP_PREFIX = _SEQUENCE + key(PACKET_TIMESTAMP, VARINT)  # the timestamp's value follows
_TRACK_EVENT_KEY = key(PACKET_TRACK_EVENT, LENGTH_DELIMITED)
_ANNOTATION_KEY = key(EVENT_DEBUG_ANNOTATIONS, LENGTH_DELIMITED)
_FLOW_OUT = key(EVENT_FLOW_IDS, FIXED64)  # a fixed64 flow id follows
_FLOW_END = key(EVENT_TERMINATING_FLOW_IDS, FIXED64)
_PACKET_OVERHEAD = len(_TIMESTAMP_PREFIX) + len(_TRACK_EVENT_KEY)
CHUNK_EVENTS = 65_536


def write_proto_trace(plan: TracePlan, path: Path) -> None:
    """Write the plan as a Perfetto protobuf trace."""
    with open(path, "wb") as stream:
        stream.writelines(trace_chunks(plan))


def trace_chunks(plan: TracePlan) -> Iterator[bytes]:
    """The encoded Trace: its TracePacket fields, tracks first, then the timeline in order, a few MB at a time."""
    uuids = len(plan.processes)  # processes are tracks 1.., threads follow, then request lanes
    descriptors = []
    for pid, name in plan.processes:
        process = varint_field(PROCESS_PID, pid) + string_field(PROCESS_NAME, name)
        descriptors.append(_descriptor(pid, bytes_field(TRACK_PROCESS, process), first=not descriptors))
    for pid, tid, name in plan.threads:
        thread = varint_field(THREAD_PID, pid) + varint_field(THREAD_TID, tid) + string_field(THREAD_NAME, name)
        descriptors.append(_descriptor(uuids + tid, bytes_field(TRACK_THREAD, thread)))
    yield b"".join(bytes_field(TRACE_PACKET, packet) for packet in descriptors)
    yield from _Timeline(plan).chunks()


class _Timeline:
    """The timeline's packets from the plan's columns: each frame's and request's TrackEvent encoded a column
    at a time (the encodings that recur cached), then framed as packets in time order."""

    def __init__(self, plan: TracePlan):
        self.plan = plan
        self.thread_track = {tid: len(plan.processes) + tid for _, tid, _ in plan.threads}
        self.thread_names = {tid: name for _, tid, name in plan.threads}
        self.next_uuid = len(plan.processes) + len(plan.threads) + 1
        self.heads: dict[tuple, bytes] = {}
        self.lane_tracks: dict[tuple[int, int], int] = {}

    def chunks(self) -> Iterator[bytes]:
        """The timeline's TracePacket fields, `CHUNK_EVENTS` events at a time: each event's TrackEvent picked
        from its kind's column, a busy period's end packet after its begin, a lane's descriptor before its
        first span."""
        plan = self.plan
        kinds, rows = plan.kinds, plan.rows
        picked = np.empty(len(kinds), dtype=object)
        submits, completions = self._request_events()
        for kind, encoded in ((FRAME, self._frame_events()), (SUBMIT, submits), (COMPLETE, completions),
                              (BUSY, self._busy_events())):
            at = kinds == kind
            picked[at] = _objects(encoded)[rows[at]]
        descriptors = self._spans(picked)
        events = picked.tolist()
        for position in np.flatnonzero(kinds == BUSY).tolist():  # the period's end, right after its begin
            events[position] += self.busy_ends[rows[position]]
        lengths = np.fromiter(map(len, picked.tolist()), dtype=np.int64, count=len(kinds))
        for start in range(0, len(kinds), CHUNK_EVENTS):
            stop = start + CHUNK_EVENTS
            headers = _packet_headers(plan.times[start:stop], lengths[start:stop])
            for position in (position for position in descriptors if start <= position < stop):
                headers[position - start] = descriptors[position] + headers[position - start]
            yield b"".join(chain.from_iterable(zip(headers, events[start:stop])))

    def _busy_events(self) -> list[bytes]:
        """Each busy period's begin TrackEvent; its end packet, framed, kept in `busy_ends`."""
        busy = self.plan.busy
        tracks = [self.thread_track[tid] for tid in busy["tid"]]
        ends = [self._head(TYPE_SLICE_END, track) for track in tracks]
        lengths = np.fromiter(map(len, ends), dtype=np.int64, count=len(ends))
        self.busy_ends = [header + end for header, end in zip(_packet_headers(busy["end"], lengths), ends)]
        return [self._head(TYPE_SLICE_BEGIN, track, "cpu", "busy") for track in tracks]

    def _spans(self, events: np.ndarray) -> dict[int, bytes]:
        """Each request's async span, begun and ended in time order on a lane of its thread's process: the first
        lane free when it begins. Returns each new lane's descriptor packet by the position of the span that
        first uses it (it goes before that span)."""
        requests, kinds, rows = self.plan.requests, self.plan.kinds, self.plan.rows
        spans = np.flatnonzero((kinds == BEGIN) | (kinds == END))
        tids, pids, request_ids = requests["tid"], requests["pid"], requests["request_id"]
        free: dict[int, list[int]] = defaultdict(list)  # per thread, a heap of its free lanes
        lanes: dict[int, int] = defaultdict(int)  # per thread, its lanes so far
        open_spans: dict[tuple[int, int], int] = {}
        tracks, descriptors = [], {}
        for position, kind, row in zip(spans.tolist(), kinds[spans].tolist(), rows[spans].tolist()):
            tid = tids[row]
            if kind == BEGIN:
                lane = heappop(free[tid]) if free[tid] else lanes[tid]
                if lane == lanes[tid]:
                    lanes[tid] += 1
                    self.lane_tracks[(tid, lane)] = self.next_uuid
                    self.next_uuid += 1
                    descriptors[position] = self._lane_descriptor(tid, lane, pids[row])
                open_spans[(tid, request_ids[row])] = lane
            else:
                lane = open_spans.pop((tid, request_ids[row]))
                heappush(free[tid], lane)
            tracks.append(self.lane_tracks[(tid, lane)])
        name_key = key(EVENT_NAME, LENGTH_DELIMITED)
        for position, kind, row, track in zip(spans.tolist(), kinds[spans].tolist(), rows[spans].tolist(), tracks):
            if kind == BEGIN:
                name = f"request {request_ids[row]}".encode()
                events[position] = self._head(TYPE_SLICE_BEGIN, track, "request") + name_key + varint(len(name)) + name
            else:
                events[position] = self._head(TYPE_SLICE_END, track, "request")
        return descriptors

    def _lane_descriptor(self, tid: int, lane: int, pid: int) -> bytes:
        """The TracePacket field describing a lane: named after its thread, under the thread's process."""
        name = f"{self.thread_names[tid]} in flight {lane + 1}"
        descriptor = _descriptor(self.lane_tracks[(tid, lane)], string_field(TRACK_NAME, name)
                                 + varint_field(TRACK_PARENT_UUID, pid))
        return bytes_field(TRACE_PACKET, descriptor)

    def _frame_events(self) -> list[bytes]:
        """Each frame's or mark's TrackEvent: an instant on its component's track, its arguments, its flow."""
        frames = self.plan.frames
        places = list(zip(frames["tid"], frames["mark"], frames["name"]))
        heads = {place: self._head(TYPE_INSTANT, self.thread_track[place[0]], "mark" if place[1] else "frame",
                                   place[2]) for place in set(places)}
        wire_name = string_field(ANNOTATION_NAME, "wire")
        wires = [b"" if wire is None else _annotation_bytes(wire_name + string_field(ANNOTATION_STRING, wire))
                 for wire in frames["wire"]]
        flows = [(_FLOW_OUT if out else _FLOW_END) + bind.to_bytes(8, "little") if bind else b""
                 for bind, out in zip(frames["bind"], frames["flow_out"])]
        event, dev_num, frame_type, msg_id, token, msg_size = (
            _annotations(name, frames[name]) for name in FRAME_ARGS if name != "wire")
        value = _annotations("value", frames["value"])
        return [b"".join((heads[place], dev_num[row], value[row]) if place[1] else
                         (heads[place], event[row], dev_num[row], frame_type[row], msg_id[row], token[row],
                          msg_size[row], wires[row], flows[row])) for row, place in enumerate(places)]

    def _request_events(self) -> tuple[list[bytes], list[bytes]]:
        """Each request's submit and completion TrackEvents: instants on its driver -> device track, with the
        request's arguments (encoded once for both) and the flow from one to the other."""
        requests = self.plan.requests
        arguments = [b"".join(encoded) for encoded in
                     zip(*(_annotations(argument, requests[argument]) for argument in REQUEST_ARGS))]
        flows = [flow.to_bytes(8, "little") for flow in requests["flow"]]
        tids = requests["tid"]
        instants = []
        for name, flow_key in (("submit", _FLOW_OUT), ("complete", _FLOW_END)):
            heads = {tid: self._head(TYPE_INSTANT, self.thread_track[tid], "request", name) for tid in set(tids)}
            instants.append([heads[tid] + encoded + flow_key + flow for tid, encoded, flow in zip(tids, arguments, flows)])
        return instants[0], instants[1]

    def _head(self, event_type: int, track: int, category: str | None = None, name: str | None = None) -> bytes:
        """A TrackEvent's type, track, category and name: encoded once per combination."""
        encoded = self.heads.get((event_type, track, category, name))
        if encoded is None:
            encoded = varint_field(EVENT_TYPE, event_type) + varint_field(EVENT_TRACK_UUID, track)
            if category is not None:
                encoded += string_field(EVENT_CATEGORIES, category)
            if name is not None:
                encoded += string_field(EVENT_NAME, name)
            self.heads[(event_type, track, category, name)] = encoded
        return encoded


def _annotations(name: str, column: list) -> list[bytes]:
    """A column's values as debug annotations (nothing for a missing value): each distinct value encoded once,
    or, for integers mostly distinct (tokens, times), their varints worked out all at once and the fields
    before them once per varint length."""
    key_field = string_field(ANNOTATION_NAME, name)
    distinct = set(column)
    if len(distinct) * 8 > len(column) and all(type(value) is int for value in distinct):
        value_key = key(ANNOTATION_INT, VARINT)
        before = [_ANNOTATION_KEY + varint(len(key_field) + len(value_key) + size) + key_field + value_key
                  for size in range(11)]
        return [before[len(encoded)] + encoded for encoded in _varints(np.asarray(column, dtype=np.int64))]
    encoded = {value: b"" if value is None else _annotation_bytes(key_field + _value(value)) for value in distinct}
    return [encoded[value] for value in column]


def _objects(items: list) -> np.ndarray:
    """A list as a numpy object array (for picking rows by index arrays)."""
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _packet_headers(times, lengths: np.ndarray) -> list[bytes]:
    """What goes before each TrackEvent of `lengths` bytes at `times` (ns): the TracePacket field's key and
    length, the sequence, the timestamp, the TrackEvent field's key and length. Built at once as the rows of a
    byte matrix, each segment placed after the ones before it in its row."""
    stamps, stamp_sizes = _varint_matrix(times)
    length_varints, length_sizes = _varint_matrix(lengths)
    packet_lengths = _PACKET_OVERHEAD + stamp_sizes + length_sizes + lengths
    count = len(lengths)
    segments = [_constant(_PACKET_KEY, count), _varint_matrix(packet_lengths), _constant(_TIMESTAMP_PREFIX, count),
                (stamps, stamp_sizes), _constant(_TRACK_EVENT_KEY, count), (length_varints, length_sizes)]
    width = sum(matrix.shape[1] for matrix, _ in segments)
    headers = np.zeros((count, width), dtype=np.uint8)
    used = np.zeros(count, dtype=np.int64)
    rows = np.arange(count)
    for matrix, sizes in segments:
        for index in range(matrix.shape[1]):
            inside = index < sizes
            headers[rows[inside], used[inside] + index] = matrix[inside, index]
        used += sizes
    blob = headers.tobytes()
    return [blob[start:start + size] for start, size in zip(range(0, width * count, width), used.tolist())]


def _constant(field: bytes, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A segment every row has, as `_varint_matrix` gives one."""
    return (np.broadcast_to(np.frombuffer(field, dtype=np.uint8), (count, len(field))),
            np.full(count, len(field), dtype=np.int64))


def _annotation_bytes(fields: bytes) -> bytes:
    return _ANNOTATION_KEY + varint(len(fields)) + fields


def _varints(values) -> list[bytes]:
    """Integers as varints (a negative one as its 64-bit two's complement), worked out for all at once."""
    numbers = np.asarray(values, dtype=np.int64)
    if numbers.size and 0 <= numbers.min() and numbers.max() < len(SMALL_VARINTS):  # lengths, small values
        return [SMALL_VARINTS[number] for number in numbers.tolist()]
    groups, sizes = _varint_matrix(numbers)
    blob, width = groups.tobytes(), groups.shape[1]
    return [blob[start:start + size] for start, size in zip(range(0, width * len(numbers), width), sizes.tolist())]


def _varint_matrix(values) -> tuple[np.ndarray, np.ndarray]:
    """Integers as varints, a row of bytes each (seven bits a byte, low group first, the high bit set on all
    but the last), and each one's length in bytes."""
    numbers = np.asarray(values, dtype=np.int64).view(np.uint64)
    width = max(1, -(-int(numbers.max()).bit_length() // 7)) if numbers.size else 1  # bytes of the longest
    groups = np.stack([(numbers >> np.uint64(7 * index)) & np.uint64(0x7F) for index in range(width)], axis=1)
    sizes = np.ones(len(numbers), dtype=np.int64)
    for index in range(1, width):
        sizes += numbers >> np.uint64(7 * index) != 0
    groups |= np.where(np.arange(width) < sizes[:, None] - 1, np.uint64(0x80), np.uint64(0))
    return groups.astype(np.uint8), sizes


def _descriptor(uuid: int, fields: bytes, *, first: bool = False) -> bytes:
    """A TrackDescriptor packet; the first packet of the sequence also marks its incremental state fresh."""
    flags = varint_field(PACKET_SEQUENCE_FLAGS, SEQ_INCREMENTAL_STATE_CLEARED) if first else b""
    return (_SEQUENCE + flags
            + bytes_field(PACKET_TRACK_DESCRIPTOR, varint_field(TRACK_UUID, uuid) + fields))


def _value(value) -> bytes:
    """A debug annotation's value field."""
    if isinstance(value, bool):
        return varint_field(ANNOTATION_BOOL, value)
    if isinstance(value, int):
        return varint_field(ANNOTATION_INT, value)
    return string_field(ANNOTATION_STRING, str(value))
