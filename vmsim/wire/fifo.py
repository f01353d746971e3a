"""The 2026 FF-A FIFO rings (`struct virtio_msg_ffa_fifo_hdr`, L-26 xfer_fifo.c; reference §4.4).

A region shared with FFA_MEM_SHARE holds two rings: the first is the driver's TX, the second (at the
first header's `next_offset`) its RX. Each ring is a 192-byte header (magic, version, message size,
depth, next_offset; read and write index each on its own 64-byte line) followed by `depth` entries of
`message_size` bytes. Empty is read == write, full is (write + 1) % depth == read, so `capacity` is
depth - 1. A consumer that pops from a ring that was full must notify the producer: `try_pop()` leaves
that answer in `was_full`.

Byte accounting (`bytes_read` / `bytes_written`): both indices on every op, and the whole entry on a
push (it is zero-filled before the copy) or a pop.
"""

from __future__ import annotations

from vmsim.errors import EncodeError
from vmsim.wire._view import U16, Field, View, bad_field, shared_bytes

FIFO_MAGIC = b"VFFAFIFO"
FIFO_VERSION = 0
HEADER_SIZE = 0xC0
MIN_MESSAGE_SIZE = 104
"""A FIFO entry must hold the largest FF-A frame, 104 bytes (L-26 xfer_fifo.c)."""

_u16 = U16.unpack_from
_p16 = U16.pack_into


class FifoHeader(View):
    """The 192-byte ring header; offsets are relative to the ring start (L-26)."""

    __slots__ = ()
    NAME = "ffa fifo"
    SIZE = HEADER_SIZE
    magic = Field("8s", 0)
    version = Field("H", 8)
    message_size = Field("H", 16)
    depth = Field("H", 18)
    next_offset = Field("I", 24)
    read_index = Field("H", 64)
    write_index = Field("H", 128)


class FifoRing:
    """One FIFO ring with the common queue interface (`try_push`, `try_pop`, `capacity`, `len`)."""

    __slots__ = ("_buf", "_entries", "_r_off", "_w_off", "bytes_read", "bytes_written", "capacity",
                 "element_size", "header", "slots", "was_full")
    FORMAT = "ffa-fifo-2026"

    def __init__(self, buf, offset: int = 0):
        """Attach to the ring at `offset`; DecodeError naming field and offset if the header is unusable."""
        buf = shared_bytes(buf, "ffa fifo")
        hdr = FifoHeader(buf, offset)
        checks = (("magic", hdr.magic == FIFO_MAGIC, repr(FIFO_MAGIC)),
                  ("version", hdr.version == FIFO_VERSION, str(FIFO_VERSION)),
                  ("message_size", hdr.message_size >= MIN_MESSAGE_SIZE, f">= {MIN_MESSAGE_SIZE}"),
                  ("depth", hdr.depth >= 2, ">= 2"))
        for name, ok, expected in checks:
            if not ok:
                raise bad_field("ffa fifo", name, offset + getattr(FifoHeader, name).offset,
                                getattr(hdr, name), expected)
        depth, size = hdr.depth, hdr.message_size
        entries = offset + HEADER_SIZE
        if entries + depth * size > len(buf):
            raise bad_field("ffa fifo", "depth", offset + 18, depth,
                            f"{depth} entries of {size} bytes inside the {len(buf)}-byte buffer")
        self.header = hdr
        self._buf = buf
        self._entries = entries
        self._r_off = offset + 64
        self._w_off = offset + 128
        self.slots = depth
        self.capacity = depth - 1
        self.element_size = size
        self.was_full = False
        self.bytes_read = 0
        self.bytes_written = 0
        self._indices()  # an index already out of range is a bad header, not a later surprise
        self.bytes_read = 0

    @classmethod
    def create(cls, buf, offset: int, depth: int, message_size: int = MIN_MESSAGE_SIZE,
               next_offset: int = 0) -> FifoRing:
        """Write an empty ring header (indices 0) and attach; EncodeError if it does not fit."""
        if message_size < MIN_MESSAGE_SIZE or depth < 2:
            raise EncodeError(f"ffa fifo: message_size {message_size} (>= {MIN_MESSAGE_SIZE}) and depth {depth} "
                              "(>= 2) required")
        buf = shared_bytes(buf, "ffa fifo")
        if offset < 0 or offset + HEADER_SIZE + depth * message_size > len(buf):
            raise EncodeError(f"ffa fifo: {depth} entries of {message_size} bytes at offset {offset} exceed the "
                              f"{len(buf)}-byte buffer")
        buf[offset:offset + HEADER_SIZE] = bytes(HEADER_SIZE)
        hdr = FifoHeader(buf, offset)
        hdr.magic = FIFO_MAGIC
        hdr.version = FIFO_VERSION
        hdr.message_size = message_size
        hdr.depth = depth
        hdr.next_offset = next_offset
        return cls(buf, offset)

    def _indices(self) -> tuple[int, int]:
        buf, depth = self._buf, self.slots
        r = _u16(buf, self._r_off)[0]
        w = _u16(buf, self._w_off)[0]
        self.bytes_read += 4
        if r >= depth:
            raise bad_field("ffa fifo", "read_index", self._r_off, r, f"< depth {depth}")
        if w >= depth:
            raise bad_field("ffa fifo", "write_index", self._w_off, w, f"< depth {depth}")
        return r, w

    def try_push(self, msg) -> bool:
        """Zero-fill the entry at write, copy `msg`, publish write + 1; False when full."""
        size = len(msg)
        if not 0 < size <= self.element_size:
            raise EncodeError(f"ffa fifo: message of {size} bytes, expected 1..{self.element_size}")
        r, w = self._indices()
        nxt = w + 1
        if nxt == self.slots:
            nxt = 0
        if nxt == r:
            return False
        esize = self.element_size
        start = self._entries + w * esize
        buf = self._buf
        buf[start:start + size] = msg
        buf[start + size:start + esize] = bytes(esize - size)
        _p16(buf, self._w_off, nxt)
        self.bytes_written += esize + 2
        return True

    def try_pop(self) -> bytes | None:
        """The whole entry at read (a copy), then publish read + 1; None when empty.

        Sets `was_full`: True when the ring was full before this pop, i.e. the producer may be waiting
        and must be notified.
        """
        r, w = self._indices()
        if r == w:
            self.was_full = False
            return None
        depth = self.slots
        self.was_full = (w + 1) % depth == r
        esize = self.element_size
        start = self._entries + r * esize
        data = bytes(self._buf[start:start + esize])
        r += 1
        _p16(self._buf, self._r_off, 0 if r == depth else r)
        self.bytes_read += esize
        self.bytes_written += 2
        return data

    def __len__(self) -> int:
        r, w = self._indices()
        return (w - r) % self.slots


def create_fifo_pair(buf, offset: int, size: int, message_size: int = MIN_MESSAGE_SIZE) -> tuple[FifoRing, FifoRing]:
    """Lay out the driver's TX ring in the first half of the region and its RX ring in the second.

    The first header's `next_offset` (relative to the region start) points at the second ring, whose
    own `next_offset` is 0 (last ring). Returns (driver_tx, driver_rx). The even split is vmsim's choice.
    """
    half = size // 2
    depth = (half - HEADER_SIZE) // message_size
    tx = FifoRing.create(buf, offset, depth, message_size, next_offset=half)
    rx = FifoRing.create(buf, offset + half, depth, message_size)
    return tx, rx


def open_fifo_pair(buf, offset: int = 0) -> tuple[FifoRing, FifoRing]:
    """Attach to both rings of a region by following the first header's `next_offset`."""
    tx = FifoRing(buf, offset)
    nxt = tx.header.next_offset
    end = HEADER_SIZE + tx.slots * tx.element_size
    if nxt < end:
        raise bad_field("ffa fifo", "next_offset", offset + 24, nxt, f">= {end} (after the first ring)")
    return tx, FifoRing(buf, offset + nxt)
