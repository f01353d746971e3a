"""The frame logs `vmsim check` reads and writes (docs/conformance.md has the formats with examples).

**Frame log** (vmsim's own text format), one frame per line, fields separated by blanks::

    # vmsim frame log: time direction bus layout frame
    1005080 to-device amp0 v1 0002000002000c000000
    1030640 to-driver amp0 v1 01020000020012000000...

- time: integer nanoseconds, or a number with a unit (``1.5us``); lines are judged in file order;
- direction: ``to-device`` or ``to-driver``, the way the frame travels; a log that records both ends of
  a bus adds ``:sent`` (put on the bus) or ``:delivered`` (taken off it), as vmsim's own dumps do; a line
  without it is both;
- bus: a name without blanks; layout: a `vmsim.wire` layout name (``v1``, ``ffa-2026``, ...);
- frame: the bytes in hex, the rest of the line (blanks between bytes allowed).

Blank lines and lines starting with ``#`` are skipped.

**Linux dynamic debug** of the virtio-msg AMP bus driver: lines holding ``TX MSG: `` (the driver sent
the frame) or ``RX MSG: `` (it received one) followed by the frame's first bytes as space-separated hex
(``%40ph``: 40 bytes). Everything else in the file (other kernel messages) is skipped. The text before the
marker, less a ``[ seconds]`` timestamp, names the bus (``virtio-msg-amp 0000:00:03.0``); the timestamp
gives the time (the line's number when there is none). A frame is its ``msg_size`` first bytes; a longer
frame was cut at 40 bytes and is judged on what is there.

Every problem is a `VmsimError` naming ``file:line``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from vmsim.errors import VmsimError
from vmsim.units import parse_time_ns
from vmsim.wire import get_layout, layout_names

from .frames import FrameChunk, empty_chunk

DIRECTIONS = {"to-device": True, "to-driver": False}
STAGES = {"": (True, True), "sent": (True, False), "delivered": (False, True)}
DYNDBG = re.compile(r"(?P<side>TX|RX) MSG: ?(?P<hex>.*)$")
TIMESTAMP = re.compile(r"^\s*\[\s*(?P<seconds>\d+(?:\.\d+)?)\]\s*")
HEX_BYTE = re.compile(r"[0-9a-fA-F]{2}")
HEADER_LINE = "# vmsim frame log: time direction bus layout frame"


class CaptureError(VmsimError):
    """A line of a frame log or a dynamic-debug capture that cannot be read."""


class _Builder:
    """Collects frames line by line into one `FrameChunk`."""

    def __init__(self):
        self.time, self.bus, self.to_device, self.sent, self.delivered = [], [], [], [], []
        self.lengths, self.rows, self.frames = [], [], []
        self.buses: dict[str, int] = {}
        self.layouts: list[str] = []

    def add(self, where: str, time_ns: int, bus: str, layout: str, to_device: bool, stage: tuple[bool, bool],
            data: bytes, line: int) -> None:
        code = self.buses.get(bus)
        if code is None:
            code = self.buses[bus] = len(self.layouts)
            self.layouts.append(layout)
        elif self.layouts[code] != layout:
            raise CaptureError(f"{where}: bus {bus} was {self.layouts[code]} before, now {layout}")
        self.time.append(time_ns)
        self.bus.append(code)
        self.to_device.append(to_device)
        self.sent.append(stage[0])
        self.delivered.append(stage[1])
        self.lengths.append(len(data))
        self.rows.append(line)
        self.frames.append(data)

    def chunk(self) -> FrameChunk:
        if not self.frames:
            return empty_chunk()
        lengths = np.asarray(self.lengths, dtype=np.int64)
        return FrameChunk(
            time=np.asarray(self.time, dtype=np.int64), bus=np.asarray(self.bus, dtype=np.int32),
            buses=list(self.buses), layouts=self.layouts, to_device=np.asarray(self.to_device, dtype=bool),
            sent=np.asarray(self.sent, dtype=bool), delivered=np.asarray(self.delivered, dtype=bool),
            start=np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64), length=lengths,
            blob=b"".join(self.frames), rows=np.asarray(self.rows, dtype=np.int64))


def read_capture(path: Path, layout: str = "v1") -> FrameChunk:
    """A frame log or a dynamic-debug capture (told apart by their lines), as one chunk whose rows are the
    file's line numbers. `layout` is the dynamic-debug frames' layout (a frame log names its own)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read: {exc.strerror or exc}") from None
    lines = text.splitlines()
    if any(DYNDBG.search(line) for line in lines):
        return _read_dyndbg(path, lines, layout)
    return _read_frame_log(path, lines)


def _read_frame_log(path, lines: list[str]) -> FrameChunk:
    builder = _Builder()
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path}:{number}"
        fields = text.split(None, 4)
        if len(fields) < 5:
            raise CaptureError(f"{where}: expected 'time direction bus layout frame', got {len(fields)} field(s)")
        time_text, direction, bus, layout, frame = fields
        try:
            time_ns = parse_time_ns(time_text)
        except ValueError as exc:
            raise CaptureError(f"{where}: time: {exc}") from None
        way, _, stage = direction.partition(":")
        if way not in DIRECTIONS or stage not in STAGES:
            raise CaptureError(f"{where}: direction {direction!r}: expected to-device or to-driver, "
                               "optionally with :sent or :delivered")
        if layout not in layout_names():
            raise CaptureError(f"{where}: unknown layout {layout!r}; layouts: {', '.join(layout_names())}")
        hex_text = "".join(frame.split())
        try:
            data = bytes.fromhex(hex_text)
        except ValueError:
            raise CaptureError(f"{where}: frame is not hex: {frame[:40]!r}") from None
        if not data:
            raise CaptureError(f"{where}: empty frame")
        builder.add(where, time_ns, bus, layout, DIRECTIONS[way], STAGES[stage], data, number)
    return builder.chunk()


def _read_dyndbg(path, lines: list[str], layout_name: str) -> FrameChunk:
    layout = get_layout(layout_name)
    size_at = layout.header.offsets.get("msg_size")
    builder = _Builder()
    for number, line in enumerate(lines, 1):
        found = DYNDBG.search(line)
        if found is None:
            continue
        where = f"{path}:{number}"
        tokens = found["hex"].split()
        if not tokens or not all(HEX_BYTE.fullmatch(token) for token in tokens):
            raise CaptureError(f"{where}: {found['side']} MSG is not followed by hex bytes: {found['hex'][:40]!r}")
        data = bytes(int(token, 16) for token in tokens)
        if size_at is not None and len(data) >= size_at + 2:
            msg_size = int.from_bytes(data[size_at:size_at + 2], "little")
            if msg_size >= layout.header_size:
                data = data[:msg_size]  # the dump shows the whole buffer: what follows msg_size is not the frame
        stamp = TIMESTAMP.match(line)
        before = line[:found.start()]
        if stamp:
            before = before[stamp.end():]
        bus = "_".join(before.strip().rstrip(":").split()) or "bus"  # one word, as a frame log's bus field
        time_ns = round(float(stamp["seconds"]) * 1e9) if stamp else number
        builder.add(where, time_ns, bus, layout_name, found["side"] == "TX", STAGES[""], data, number)
    return builder.chunk()


def format_frame_log(chunk: FrameChunk, header: bool = True) -> str:
    """The frames of a chunk as a frame log (each row keeps whether it is the frame sent or delivered)."""
    lines = [HEADER_LINE] if header else []
    for i in range(len(chunk)):
        way = "to-device" if chunk.to_device[i] else "to-driver"
        sent, delivered = bool(chunk.sent[i]), bool(chunk.delivered[i])
        stage = "" if sent and delivered else ":sent" if sent else ":delivered"
        bus = chunk.bus[i]
        lines.append(f"{int(chunk.time[i])} {way}{stage} {chunk.buses[bus]} {chunk.layouts[bus]} {chunk.wire(i).hex()}")
    return "".join(line + "\n" for line in lines)
