"""Append-only, columnar logs of one run: bus events and completed requests.

The hot path appends to `array` columns (8 bytes a number, no Python object per value) and to
one `bytearray` holding the frames. Frame header columns (type, msg_id, token, ...) are not stored: they
are read back from the frame bytes when the rows are turned into table columns.

A log keeps every row until the end unless it is given a sink (`stream_to`): then each time `rows` rows
are buffered it hands itself to the sink, which reads the buffered rows (`columns()`), and starts an empty
buffer, so a long run holds one buffer, not its history. The sink is the results layer's (a parquet row
group per hand-over); this layer knows only that it is called with the log and the number of its first
buffered row in the run.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from vmsim.wire import get_layout


class Column(NamedTuple):
    """One column of a log table: its name, its Arrow type (by name: `vmsim.sim` never loads pyarrow) and
    what it means; `vmsim.results` derives the parquet schema and results/README.md's tables from these."""

    name: str
    arrow_type: str
    meaning: str


EVENT_ROW = (
    Column("time_ns", "int64", "simulated time of the event"),
    Column("component", "string", "dotted name of the component that logged it, e.g. `amp0.to_device`"),
    Column("event", "string", "what happened: `tx`, `rx`, `doorbell.ring`, `doorbell.coalesced`, "
           "`doorbell.deliver`, a sharing step (`share.*`, `release.*`, `reclaim`), ..."),
    Column("bus", "string", "the bus it happened on; null for a component on no bus"),
    Column("dev_num", "int32", "the device's number on the bus (a frame's from its header); -1 for none"),
    Column("type", "int16", "the frame header's type byte; -1 for a mark"),
    Column("msg_id", "int16", "the frame header's message id; -1 for a mark"),
    Column("msg_name", "string", "the message's name in the bus's layout, e.g. `GET_DEVICE_INFO`; null for a mark"),
    Column("token", "int32", "the frame header's token; -1 for a mark or a layout without tokens"),
    Column("msg_size", "int32", "the frame's size in bytes as its header gives it; -1 for a mark"),
    Column("value", "int64", "a frame's length in bytes; for a mark a number of its own (a sharing step's "
           "region id, ...)"),
    Column("wire", "binary", "the frame's exact bytes; null for a mark and when `keep_wire: false`"),
)
"""One row per frame put on or taken off a bus, doorbell, grant or sharing step (`EventLog.columns`)."""

REQUEST_ROW = (
    Column("request_id", "int64", "the request's number, unique in the run"),
    Column("driver", "string", "the driver that submitted it"),
    Column("device", "string", "the device that served it"),
    Column("dev_num", "int32", "that device's number on its bus"),
    Column("vq", "int32", "the virtqueue it went through"),
    Column("size_bytes", "int64", "its buffer's size"),
    Column("submit_ns", "int64", "when its workload submitted it"),
    Column("start_ns", "int64", "when the device started serving it (its buffer read)"),
    Column("service_ns", "int64", "how long the device served it"),
    Column("complete_ns", "int64", "when the driver saw it completed on the used ring"),
    Column("latency_ns", "int64", "`complete_ns - submit_ns`"),
)
"""One row per completed I/O request (`RequestLog.columns`)."""


def in_row_order(row: tuple[Column, ...], values: dict[str, object]) -> dict[str, object]:
    """`values` keyed and ordered by `row`'s columns: a column computed but not declared, or declared but not
    computed, is a bug caught on the first table built."""
    names = [column.name for column in row]
    if set(values) != set(names):
        raise AssertionError(f"log columns {sorted(values)} differ from the declared row {names}")
    return {name: values[name] for name in names}


_NO_BUS = -1

Sink = Callable[["EventLog | RequestLog", int], None]
"""Takes a log whose buffer is full (or the run over) and the run-wide number of its first buffered row."""

_NEVER = 1 << 62  # the buffer limit of a log without a sink: it keeps every row
FRAME_BYTES = 1 << 26
"""Frame bytes an event log with a sink buffers at most (64 MiB): parquet binary offsets are 32-bit."""


class Interner:
    """Names <-> small integers, so that log rows hold numbers, not strings."""

    __slots__ = ("ids", "names")

    def __init__(self):
        self.names: list[str] = []
        self.ids: dict[str, int] = {}

    def __call__(self, name: str) -> int:
        found = self.ids.get(name)
        if found is None:
            found = self.ids[name] = len(self.names)
            self.names.append(name)
        return found


class _StreamedLog:
    """What the event and request logs share: buffered columns handed to a sink (`stream_to`) and dropped,
    and a length that counts every row of the run. Subclasses list their buffers in `_buffers`, the first
    holding one item a row."""

    __slots__ = ()

    def _buffers(self) -> tuple:
        raise NotImplementedError

    def flush(self) -> None:
        """Hand the buffered rows to the sink and empty the buffer (nothing without a sink or rows)."""
        buffers = self._buffers()
        if self.sink is None or not buffers[0]:
            return
        self.sink(self, self.flushed)
        self.flushed += len(buffers[0])
        for column in buffers:
            del column[:]

    def __len__(self) -> int:
        """Rows logged in the run, handed to the sink or not."""
        return self.flushed + len(self._buffers()[0])


class EventLog(_StreamedLog):
    """Every frame put on a bus or taken off it, every doorbell, grant and share operation."""

    __slots__ = (
        "blob",
        "bus",
        "bus_layouts",
        "buses",
        "component",
        "components",
        "dev_num",
        "event",
        "events",
        "flush_bytes",
        "flush_rows",
        "flushed",
        "keep_wire",
        "sink",
        "time",
        "value",
        "wire_length",
        "wire_start",
    )

    def __init__(self, keep_wire: bool = True):
        self.components = Interner()
        self.events = Interner()
        self.buses = Interner()
        self.bus_layouts: dict[int, str] = {}
        self.keep_wire = keep_wire
        self.time = array("q")
        self.component = array("i")
        self.event = array("i")
        self.bus = array("i")
        self.dev_num = array("i")
        self.value = array("q")
        self.wire_start = array("q")
        self.wire_length = array("i")
        self.blob = bytearray()
        self.sink: Sink | None = None
        self.flush_rows = self.flush_bytes = _NEVER
        self.flushed = 0

    def stream_to(self, sink: Sink, rows: int) -> None:
        """Hand every `rows` buffered rows (or `FRAME_BYTES` of frames) to `sink`, then drop them (see the
        module docstring)."""
        self.sink, self.flush_rows, self.flush_bytes = sink, rows, FRAME_BYTES

    def _buffers(self) -> tuple:
        return (self.time, self.component, self.event, self.bus, self.dev_num, self.value, self.wire_start,
                self.wire_length, self.blob)

    def add_bus(self, name: str, layout: str) -> int:
        bus_id = self.buses(name)
        self.bus_layouts[bus_id] = layout
        return bus_id

    def frame(self, time_ns: int, component: int, event: int, bus: int, dev_num: int, data) -> None:
        """Log one frame (its bytes are kept for the trace and for `vmsim codec decode`)."""
        size = len(data)
        blob = self.blob
        start = len(blob)
        self.time.append(time_ns)
        self.component.append(component)
        self.event.append(event)
        self.bus.append(bus)
        self.dev_num.append(dev_num)
        self.value.append(size)
        self.wire_start.append(start)
        if self.keep_wire:
            self.wire_length.append(size)
            blob += data
            start += size
        else:
            self.wire_length.append(-size)
        if len(self.time) >= self.flush_rows or start >= self.flush_bytes:
            self.flush()

    def mark(self, time_ns: int, component: int, event: int, bus: int = _NO_BUS, dev_num: int = -1,
             value: int = 0) -> None:
        """Log an event that carries no frame (doorbell, grant, share); `value` is event-specific."""
        self.time.append(time_ns)
        self.component.append(component)
        self.event.append(event)
        self.bus.append(bus)
        self.dev_num.append(dev_num)
        self.value.append(value)
        self.wire_start.append(-1)
        self.wire_length.append(0)
        if len(self.time) >= self.flush_rows:
            self.flush()

    def columns(self, with_wire: bool = True) -> dict[str, object]:
        """The buffered rows (every row without a sink) as the table of `EVENT_ROW`: numpy arrays, frame
        headers read from the bytes, a layout's message names looked up once per (type, msg_id). Without
        `with_wire` the `wire` column is None: a caller that builds it from `wire_parts` skips a bytes object
        per frame."""
        rows = len(self.time)
        frame_type = np.full(rows, -1, dtype=np.int16)
        msg_id = np.full(rows, -1, dtype=np.int16)
        token = np.full(rows, -1, dtype=np.int32)
        msg_size = np.full(rows, -1, dtype=np.int32)
        names = np.full(rows, None, dtype=object)
        dev_num = np.frombuffer(self.dev_num, dtype=np.int32).copy()
        start = np.frombuffer(self.wire_start, dtype=np.int64)
        length = np.frombuffer(self.wire_length, dtype=np.int32)
        bus = np.frombuffer(self.bus, dtype=np.int32)
        sized_only = (start >= 0) & (length <= 0)  # frames logged without their bytes (keep_wire off)
        msg_size[sized_only] = -length[sized_only]
        kept = (start >= 0) & (length > 0)
        blob = np.frombuffer(self.blob, dtype=np.uint8)
        for bus_id, layout in self.bus_layouts.items():
            on_bus = np.flatnonzero(kept & (bus == bus_id))
            if on_bus.size:
                headers = _HeaderReader(layout).read(blob, start[on_bus], length[on_bus])
                (frame_type[on_bus], msg_id[on_bus], dev_num[on_bus], token[on_bus], msg_size[on_bus],
                 names[on_bus]) = headers
        wires = None
        if with_wire:
            wires = np.full(rows, None, dtype=object)
            data = bytes(self.blob)
            spans = zip(start[kept].tolist(), length[kept].tolist())
            wires[kept] = [data[first:first + size] for first, size in spans]
        return in_row_order(EVENT_ROW, {
            "time_ns": np.frombuffer(self.time, dtype=np.int64).copy(),
            "component": _named(self.components.names, self.component),
            "event": _named(self.events.names, self.event),
            "bus": _named(self.buses.names, self.bus),
            "dev_num": dev_num,
            "type": frame_type,
            "msg_id": msg_id,
            "msg_name": names,
            "token": token,
            "msg_size": msg_size,
            "value": np.frombuffer(self.value, dtype=np.int64).copy(),
            "wire": wires,
        })

    def wire_parts(self) -> tuple[np.ndarray, np.ndarray, bytes]:
        """The buffered rows' `wire` column as an Arrow binary column's parts: each row's end offset into the
        frame bytes (n + 1 offsets from 0), which rows hold bytes, and the bytes (the frames in row order)."""
        length = np.frombuffer(self.wire_length, dtype=np.int32)
        present = (np.frombuffer(self.wire_start, dtype=np.int64) >= 0) & (length > 0)
        offsets = np.zeros(len(length) + 1, dtype=np.int32)
        np.cumsum(np.where(present, length, 0), out=offsets[1:])
        return offsets, present, bytes(self.blob)


def _named(names: list[str], codes: array) -> np.ndarray:
    """Interned codes as their names (an object array sharing the name strings); code -1 is None."""
    return np.asarray([*names, None], dtype=object)[np.frombuffer(codes, dtype=np.int32)]


class _HeaderReader:
    """Reads (type, msg_id, dev_num, token, msg_size, name) from the frames of one layout, all at once."""

    __slots__ = ("header", "layout")

    def __init__(self, layout_name: str):
        self.layout = get_layout(layout_name)
        self.header = self.layout.header_size

    def read(self, blob: np.ndarray, start: np.ndarray, length: np.ndarray) -> tuple:
        """The header fields of the frames at `start` (`length` bytes each) in `blob`, one array per field; a
        4-byte header has no token (-1) and no size field (the frame's length)."""

        def u16(offset: int) -> np.ndarray:
            return blob[start + offset].astype(np.int32) | (blob[start + offset + 1].astype(np.int32) << 8)

        frame_type, msg_id, dev = blob[start].astype(np.int16), blob[start + 1].astype(np.int16), u16(2)
        if self.header == 8:
            token, msg_size = u16(4), u16(6)
        elif self.header == 6:
            token, msg_size = np.full(start.size, -1, dtype=np.int32), u16(4)
        else:
            token, msg_size = np.full(start.size, -1, dtype=np.int32), length
        kind = frame_type.astype(np.int32) * 256 + msg_id
        _, first, which = np.unique(kind, return_index=True, return_inverse=True)
        names = np.asarray([self.layout.decode(blob[start[row]:start[row] + length[row]].tobytes()).name
                            for row in first], dtype=object)
        return frame_type, msg_id, dev, token, msg_size, names[which]


class RequestLog(_StreamedLog):
    """One row per completed I/O request."""

    __slots__ = (
        "complete",
        "dev_num",
        "device",
        "devices",
        "driver",
        "drivers",
        "flush_rows",
        "flushed",
        "request_id",
        "service",
        "sink",
        "size",
        "start",
        "submit",
        "vq",
    )

    def __init__(self):
        self.drivers = Interner()
        self.devices = Interner()
        self.request_id = array("q")
        self.driver = array("i")
        self.device = array("i")
        self.dev_num = array("i")
        self.vq = array("i")
        self.size = array("q")
        self.submit = array("q")
        self.start = array("q")
        self.service = array("q")
        self.complete = array("q")
        self.sink: Sink | None = None
        self.flush_rows = _NEVER
        self.flushed = 0

    def stream_to(self, sink: Sink, rows: int) -> None:
        """Hand every `rows` buffered rows to `sink`, then drop them (see the module docstring)."""
        self.sink, self.flush_rows = sink, rows

    def _buffers(self) -> tuple:
        return (self.request_id, self.driver, self.device, self.dev_num, self.vq, self.size, self.submit,
                self.start, self.service, self.complete)

    def add(self, request_id, driver, device, dev_num, vq, size, submit, start, service, complete) -> None:
        self.request_id.append(request_id)
        self.driver.append(driver)
        self.device.append(device)
        self.dev_num.append(dev_num)
        self.vq.append(vq)
        self.size.append(size)
        self.submit.append(submit)
        self.start.append(start)
        self.service.append(service)
        self.complete.append(complete)
        if len(self.request_id) >= self.flush_rows:
            self.flush()

    def columns(self) -> dict[str, object]:
        """The buffered rows (every row without a sink) as the table of `REQUEST_ROW`: numpy arrays."""

        def ints(column):
            return np.frombuffer(column, dtype=np.int64 if column.typecode == "q" else np.int32).copy()

        complete = ints(self.complete)
        submit = ints(self.submit)
        return in_row_order(REQUEST_ROW, {
            "request_id": ints(self.request_id),
            "driver": _named(self.drivers.names, self.driver),
            "device": _named(self.devices.names, self.device),
            "dev_num": ints(self.dev_num),
            "vq": ints(self.vq),
            "size_bytes": ints(self.size),
            "submit_ns": submit,
            "start_ns": ints(self.start),
            "service_ns": ints(self.service),
            "complete_ns": complete,
            "latency_ns": complete - submit,
        })
