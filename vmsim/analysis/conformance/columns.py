"""Column helpers of the monitor: a chunk's headers read column-wise (`Heads`), the status and removal
changes the control loop records for the column rules to look up (`Timelines`), and small numpy utilities."""

from __future__ import annotations

import numpy as np

from vmsim.errors import DecodeError
from vmsim.wire import get_layout

from .frames import FrameChunk


def small_unique(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(keys, return_inverse=True)` for keys below 2**20 (layout, type, msg_id), without a sort."""
    present = np.flatnonzero(np.bincount(keys))
    lookup = np.zeros(int(present[-1]) + 1 if len(present) else 1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    return present, lookup[keys]


def device_pairs(buses: np.ndarray, devs: np.ndarray) -> list[tuple[int, int]]:
    """The distinct (bus, dev_num) pairs, as ints."""
    return [(key >> 16, key & 0xFFFF) for key in np.unique(buses.astype(np.int64) << 16 | devs).tolist()]


def decode_problem(layout, data: bytes, msg_size: int) -> str | None:
    if len(data) != msg_size:
        return f"msg_size {msg_size}, {len(data)} bytes sent"
    try:
        layout.decode(data)
    except DecodeError as exc:
        return str(exc)
    return None


class Heads:
    """The header fields of every frame of a chunk, read column-wise from the blob."""

    def __init__(self, chunk: FrameChunk):
        self.layout_names = list(dict.fromkeys(chunk.layouts))
        per_bus = np.array([self.layout_names.index(name) for name in chunk.layouts], dtype=np.int32)
        self.layout_code = per_bus[chunk.bus]
        sizes = np.array([get_layout(name).header_size for name in self.layout_names], dtype=np.int64)
        self.header_size = sizes[self.layout_code]
        self.short = chunk.length < self.header_size
        data = np.frombuffer(chunk.blob + bytes(8), dtype=np.uint8)
        start = np.where(self.short, len(chunk.blob), chunk.start)

        def u16(offset):
            return data[start + offset].astype(np.int64) | data[start + offset + 1].astype(np.int64) << 8

        self.type = data[start].astype(np.int64)
        self.msg_id = data[start + 1].astype(np.int64)
        self.dev_num = u16(2)
        eight = self.header_size == 8
        self.token = np.where(eight, u16(4), -1)
        self.msg_size = np.where(eight, u16(6), np.where(self.header_size == 6, u16(4), 40))


class Timelines:
    """Where, inside one chunk, a (bus, device)'s status or removal changed, per view, and what it was before
    the chunk: the hot frames look up the value in force at their row."""

    def __init__(self):
        self.points: dict[tuple, tuple[list[int], list]] = {}

    def add(self, key, view: str, position: int, value, before) -> None:
        points = self.points.get((key, view))
        if points is None:
            points = self.points[(key, view)] = ([], [before])
        points[0].append(position)
        points[1].append(value)

    def values(self, key, view: str, rows: np.ndarray, now) -> np.ndarray:
        """The value in force at each of `rows`; `now` (the state after the loop) when it did not change."""
        points = self.points.get((key, view))
        if points is None:
            return np.full(len(rows), now)
        positions, values = points
        return np.asarray(values)[np.searchsorted(np.asarray(positions), rows, side="left")]
