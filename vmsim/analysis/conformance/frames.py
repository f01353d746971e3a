"""Frames as the monitor reads them: one columnar chunk, whatever the source.

A chunk holds, per frame in log order: its time, bus, the way it travels (to the device or to the driver),
whether this row is the frame as sent, as delivered, or both (a capture line), the bytes captured (one
`bytes` blob with offsets) and the row it came from (events.parquet's row, a file's line). A run's
event log gives two rows per frame (`tx` as sent, `rx` as delivered); a capture gives one.

Layouts are per bus. A run knows them (`EventLog.bus_layouts`); an events table does not store them, so
`infer_layout` picks the first layout under which every frame of the bus has the message name the table
logged and, for a fixed-size message, the size it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from vmsim.errors import VmsimError
from vmsim.wire import get_layout, layout_names

TO_DEVICE_SUFFIX = "to_device"
TO_DRIVER_SUFFIX = "to_driver"


@dataclass
class FrameChunk:
    """Frames in log order (see the module docstring); `rows` are the source's row or line numbers."""

    time: np.ndarray  # int64 ns
    bus: np.ndarray  # int32 index into `buses`
    buses: list[str]
    layouts: list[str]  # per bus index
    to_device: np.ndarray  # bool
    sent: np.ndarray  # bool: the frame as its sender put it on the bus
    delivered: np.ndarray  # bool: the frame as the other side took it
    start: np.ndarray  # int64 offsets into `blob`
    length: np.ndarray  # int64 bytes captured (fewer than msg_size when a capture cut the frame)
    blob: bytes
    rows: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.time)

    def wire(self, index: int) -> bytes:
        start = int(self.start[index])
        return self.blob[start:start + int(self.length[index])]


def empty_chunk() -> FrameChunk:
    ints = np.zeros(0, dtype=np.int64)
    flags = np.zeros(0, dtype=bool)
    return FrameChunk(ints, ints.astype(np.int32), [], [], flags, flags, flags, ints, ints, b"", ints)


def chunk_from_event_log(log) -> FrameChunk:
    """The frames an `EventLog` holds (its buffered rows), read straight from its arrays and blob."""
    start = np.frombuffer(log.wire_start, dtype=np.int64)
    length = np.frombuffer(log.wire_length, dtype=np.int32).astype(np.int64)
    component = np.frombuffer(log.component, dtype=np.int32)
    direction = _directions(log.components.names)
    names = log.events.names
    event = np.frombuffer(log.event, dtype=np.int32)
    tx = event == (names.index("tx") if "tx" in names else -2)
    rx = event == (names.index("rx") if "rx" in names else -2)
    framed = (start >= 0) & (length > 0) & (tx | rx)
    if framed.any():
        framed &= direction[component] >= 0
    index = np.flatnonzero(framed)
    tx, rx = tx[index], rx[index]
    buses = list(log.buses.names)
    layouts = [log.bus_layouts.get(code, "v1") for code in range(len(buses))]
    return FrameChunk(
        time=np.frombuffer(log.time, dtype=np.int64)[index],
        bus=np.frombuffer(log.bus, dtype=np.int32)[index],
        buses=buses,
        layouts=layouts,
        to_device=direction[component[index]] == 1,
        sent=tx,
        delivered=rx,
        start=start[index],
        length=length[index],
        blob=bytes(log.blob),
        rows=getattr(log, "flushed", 0) + index,
    )


def _directions(components: list[str]) -> np.ndarray:
    """Per component name: 1 carries frames to the device, 0 to the driver, -1 neither (logs no frames)."""
    out = np.full(len(components) + 1, -1, dtype=np.int8)
    for code, name in enumerate(components):
        if name.endswith(TO_DEVICE_SUFFIX):
            out[code] = 1
        elif name.endswith(TO_DRIVER_SUFFIX):
            out[code] = 0
    return out


def chunk_from_columns(columns: Mapping, first_row: int = 0, layouts: Mapping[str, str] | None = None,
                       known: dict[str, str] | None = None) -> FrameChunk:
    """The frames of an events table given as columns (a DataFrame, a mapping of arrays, a parquet table's
    columns): rows whose `wire` holds bytes on a `*.to_device` / `*.to_driver` component.

    `layouts` names a bus's layout; the others are inferred (`infer_layout`) and remembered in `known`."""
    component = np.asarray(columns["component"], dtype=object)
    wire = np.asarray(columns["wire"], dtype=object)
    direction = np.array([1 if isinstance(name, str) and name.endswith(TO_DEVICE_SUFFIX) else
                          0 if isinstance(name, str) and name.endswith(TO_DRIVER_SUFFIX) else -1
                          for name in component], dtype=np.int8) if len(component) else np.zeros(0, np.int8)
    has_wire = np.array([isinstance(data, bytes | bytearray) and len(data) > 0 for data in wire], dtype=bool)
    event = np.asarray(columns["event"], dtype=object)
    index = np.flatnonzero(has_wire & (direction >= 0) & ((event == "tx") | (event == "rx")))
    if not len(index):
        return empty_chunk()
    frames = [bytes(wire[row]) for row in index]
    bus_column = np.asarray(columns["bus"], dtype=object)[index]
    buses = list(dict.fromkeys(bus_column.tolist()))
    bus = np.array([buses.index(name) for name in bus_column], dtype=np.int32) if len(buses) > 1 else \
        np.zeros(len(index), dtype=np.int32)
    known = {} if known is None else known
    layouts = dict(layouts or {})
    names = np.asarray(columns["msg_name"], dtype=object)[index] if "msg_name" in columns else None
    for code, name in enumerate(buses):
        if name not in layouts and name not in known:
            mine = np.flatnonzero(bus == code)
            known[name] = infer_layout([frames[i] for i in mine], None if names is None else names[mine].tolist())
    lengths = np.fromiter((len(data) for data in frames), dtype=np.int64, count=len(frames))
    event = event[index]
    return FrameChunk(
        time=np.asarray(columns["time_ns"], dtype=np.int64)[index],
        bus=bus,
        buses=[str(name) for name in buses],
        layouts=[layouts.get(name) or known[name] for name in buses],
        to_device=direction[index] == 1,
        sent=event == "tx",
        delivered=event == "rx",
        start=np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64),
        length=lengths,
        blob=b"".join(frames),
        rows=first_row + index.astype(np.int64),
    )


def infer_layout(frames: list[bytes], names: list | None) -> str:
    """The first layout (in `layout_names` order, v1 first) that decodes the head of every frame as the
    message `names` says it is; without names, the first that decodes every distinct frame head."""
    samples: dict[tuple[int, int], tuple[bytes, object]] = {}
    for position, data in enumerate(frames):
        samples.setdefault((data[0], data[1] if len(data) > 1 else -1),
                           (data, None if names is None else names[position]))
    for candidate in layout_names():
        layout = get_layout(candidate)
        specs = {(spec.type, spec.msg_id): spec for spec in layout.messages}
        if all(_fits(specs.get(key), layout, data, name) for key, (data, name) in samples.items()):
            return candidate
    raise VmsimError("no layout decodes this bus's frames: name it with --layout")


def _fits(spec, layout, data: bytes, name) -> bool:
    if spec is None or (name is not None and spec.name != name):
        return False
    if spec.size is None or layout.header.size_index is None:
        return True
    offset = layout.header.offsets["msg_size"]
    return len(data) >= offset + 2 and int.from_bytes(data[offset:offset + 2], "little") == spec.size


def chunk_from_arrow(table, first_row: int = 0, layouts: Mapping[str, str] | None = None,
                     known: dict[str, str] | None = None) -> FrameChunk:
    """`chunk_from_columns` for a pyarrow events table (a parquet row group), without a Python object per
    row: the frames are the `wire` column's own data buffer and offsets."""
    import pyarrow as pa
    import pyarrow.compute as pc

    component = table.column("component")
    event = table.column("event")
    wire = table.column("wire")
    to_device = pc.fill_null(pc.ends_with(component, TO_DEVICE_SUFFIX), False)
    to_driver = pc.fill_null(pc.ends_with(component, TO_DRIVER_SUFFIX), False)
    tx = pc.fill_null(pc.equal(event, "tx"), False)
    rx = pc.fill_null(pc.equal(event, "rx"), False)
    keep = pc.and_(pc.and_(pc.or_(to_device, to_driver), pc.or_(tx, rx)),
                   pc.fill_null(pc.greater(pc.binary_length(wire), 0), False))
    index = np.flatnonzero(keep.to_numpy(zero_copy_only=False))
    if not len(index):
        return empty_chunk()
    picked = table.take(pa.array(index))
    frames = picked.column("wire").combine_chunks()
    offsets = np.frombuffer(frames.buffers()[1], dtype=np.int32)[frames.offset:frames.offset + len(frames) + 1]
    blob = frames.buffers()[2].to_pybytes() if frames.buffers()[2] is not None else b""
    start = offsets[:-1].astype(np.int64)
    length = np.diff(offsets).astype(np.int64)
    bus_codes = pc.dictionary_encode(picked.column("bus").combine_chunks())
    buses = [str(name) for name in bus_codes.dictionary.to_pylist()]
    bus = bus_codes.indices.to_numpy(zero_copy_only=False).astype(np.int32)
    known = {} if known is None else known
    layouts = dict(layouts or {})
    missing = [code for code, name in enumerate(buses) if name not in layouts and name not in known]
    if missing:
        names = picked.column("msg_name").to_pylist() if "msg_name" in picked.column_names else None
        data = np.frombuffer(blob + bytes(2), dtype=np.uint8)
        heads = bus.astype(np.int64) << 16 | data[start].astype(np.int64) << 8 | data[start + 1]
        _, first = np.unique(heads, return_index=True)
        for code in missing:
            sample = [int(i) for i in first if bus[i] == code]
            known[buses[code]] = infer_layout([blob[start[i]:start[i] + length[i]] for i in sample],
                                              None if names is None else [names[i] for i in sample])
    return FrameChunk(
        time=picked.column("time_ns").to_numpy().astype(np.int64),
        bus=bus,
        buses=buses,
        layouts=[layouts.get(name) or known[name] for name in buses],
        to_device=to_device.to_numpy(zero_copy_only=False)[index],
        sent=tx.to_numpy(zero_copy_only=False)[index],
        delivered=rx.to_numpy(zero_copy_only=False)[index],
        start=start,
        length=length,
        blob=blob,
        rows=first_row + index.astype(np.int64),
    )
