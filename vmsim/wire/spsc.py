"""Single-producer/single-consumer queue formats and the one interface the AMP and Xen buses use.

Three formats carry virtio-msg frames between two peers over shared memory:

- `spsc-2024`: the Zero ASIC `spsc_queue.h` (Q-2024, L-amp24): int32 head @0, int32 tail @64 (each on its
  own 64-byte line), 64-byte packets @128; capacity(mapsize) = (mapsize - 192) / 64 + 1 slots.
  **head is the producer index** and tail the consumer index.
- `spsc-2025`: the hardened copy in the QEMU v1 AMP-PCI patch (Q-v1): u32 head @0, u32 tail @64, packets
  @128; (size - 128) / 64 slots (62 for 4 KiB); indices are sanitised modulo the slot count on load.
- `amp-2026`: one direction of the self-describing AMP window (`vmsim.wire.amp.AmpQueue`), where the
  naming is inverted: **tail is the producer index**.

All keep one slot empty (full is producer + 1 == consumer), so `capacity` (what fits) is `slots - 1`;
the reference's "capacity 62" is `slots` here. A push copies exactly the frame, a pop returns the
whole slot. `bytes_read` / `bytes_written` accumulate the shared-memory bytes each op touched
(indices and slot bytes; the spsc formats reload the peer index only when the cached copy says
full/empty, as `spsc_queue.h` does - assumed unchanged in the hardened 2025 copy). Each format also describes
what its next push or pop will touch, place by place (`next_push`/`next_pop`, then `push_accesses`,
`pop_accesses`, `look_accesses`: `vmsim.wire.accesses`), so that a simulator can charge it.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire._view import I32, U32, bad_field, check_span, shared_bytes
from vmsim.wire.accesses import Access
from vmsim.wire.amp import RUN, AmpLayout, AmpQueuePeer

HEAD_OFFSET = 0
TAIL_OFFSET = 64
PACKETS_OFFSET = 128
SLOT_SIZE = 64
"""`SPSC_QUEUE_MAX_PACKET_SIZE` and the cache-line placement of head/tail/packets (Q-2024, Q-v1)."""

QUEUE_FORMATS = ("amp-2026", "spsc-2025", "spsc-2024")

_u32 = U32.unpack_from
_p32 = U32.pack_into
_i32 = I32.unpack_from


class ByteQueue(Protocol):
    """What a bus needs from a queue format: one direction, producer and consumer ends together."""

    FORMAT: str
    slots: int
    capacity: int
    element_size: int
    bytes_read: int
    bytes_written: int

    def try_push(self, frame) -> bool: ...

    def try_pop(self) -> bytes | None: ...

    def next_push(self) -> tuple[int, bool]:
        """Where the next push writes its frame, and whether it will reload the consumer's index."""

    def next_pop(self) -> tuple[int, bool]:
        """Where the next pop reads its element, and whether it will reload the producer's index."""

    def push_accesses(self, element: int, nbytes: int, reload: bool) -> tuple[Access, ...]:
        """What a push of `nbytes` into the element at `element` touches."""

    def pop_accesses(self, element: int, reload: bool) -> tuple[Access, ...]:
        """What a pop of the element at `element` touches."""

    def look_accesses(self) -> tuple[Access, ...]:
        """What a pop that finds the queue empty (a receiver's last look, a poll) reads."""

    def __len__(self) -> int: ...


class _SpscQueue:
    """Shared body of the 2024 and 2025 formats; subclasses differ in slot formula and index loading."""

    __slots__ = ("_buf", "_cached_head", "_cached_tail", "_head_off", "_pkt", "_tail_off", "bytes_read",
                 "bytes_written", "capacity", "slots")
    FORMAT = ""
    element_size = SLOT_SIZE

    @staticmethod
    def slots_for(size: int) -> int:
        raise NotImplementedError

    def _load(self, off: int, name: str) -> int:
        raise NotImplementedError

    def __init__(self, buf, offset: int = 0, size: int = 4096):
        """Attach to the queue of `size` bytes at `offset`, picking up the indices already there."""
        buf = shared_bytes(buf, self.FORMAT)
        slots = self.slots_for(size)
        if slots < 2:
            raise DecodeError(f"{self.FORMAT}: queue of {size} bytes at offset {offset} has {slots} slots, "
                              "expected >= 2")
        check_span(buf, offset, PACKETS_OFFSET + slots * SLOT_SIZE, self.FORMAT)
        self._buf = buf
        self._head_off = offset + HEAD_OFFSET
        self._tail_off = offset + TAIL_OFFSET
        self._pkt = offset + PACKETS_OFFSET
        self.slots = slots
        self.capacity = slots - 1
        self.bytes_read = 0
        self.bytes_written = 0
        self._cached_head = self._load(self._head_off, "head")
        self._cached_tail = self._load(self._tail_off, "tail")

    @classmethod
    def create(cls, buf, offset: int = 0, size: int = 4096) -> _SpscQueue:
        """Creator side: zero both indices (an empty queue) and attach; EncodeError if it does not fit."""
        buf = shared_bytes(buf, cls.FORMAT)
        slots = cls.slots_for(size)
        if slots < 2 or offset < 0 or offset + PACKETS_OFFSET + slots * SLOT_SIZE > len(buf):
            raise EncodeError(f"{cls.FORMAT}: a queue of {size} bytes at offset {offset} needs >= 2 slots "
                              f"inside the {len(buf)}-byte buffer")
        _p32(buf, offset + HEAD_OFFSET, 0)
        _p32(buf, offset + TAIL_OFFSET, 0)
        return cls(buf, offset, size)

    def try_push(self, frame) -> bool:
        """Write the packet at head, then publish head + 1; False when full (head + 1 == tail)."""
        size = len(frame)
        if not 0 < size <= SLOT_SIZE:
            raise EncodeError(f"{self.FORMAT}: frame of {size} bytes, expected 1..{SLOT_SIZE}")
        head = self._load(self._head_off, "head")
        nxt = head + 1
        if nxt == self.slots:
            nxt = 0
        self.bytes_read += 4
        if nxt == self._cached_tail:
            self._cached_tail = self._load(self._tail_off, "tail")
            self.bytes_read += 4
            if nxt == self._cached_tail:
                return False
        start = self._pkt + head * SLOT_SIZE
        self._buf[start:start + size] = frame
        _p32(self._buf, self._head_off, nxt)
        self.bytes_written += size + 4
        return True

    def try_pop(self) -> bytes | None:
        """The whole slot at tail (a copy), then publish tail + 1; None when empty (tail == head)."""
        tail = self._load(self._tail_off, "tail")
        self.bytes_read += 4
        if tail == self._cached_head:
            self._cached_head = self._load(self._head_off, "head")
            self.bytes_read += 4
            if tail == self._cached_head:
                return None
        start = self._pkt + tail * SLOT_SIZE
        data = bytes(self._buf[start:start + SLOT_SIZE])
        tail += 1
        _p32(self._buf, self._tail_off, 0 if tail == self.slots else tail)
        self.bytes_read += SLOT_SIZE
        self.bytes_written += 4
        return data

    def __len__(self) -> int:
        return (self._load(self._head_off, "head") - self._load(self._tail_off, "tail")) % self.slots

    def next_push(self) -> tuple[int, bool]:
        """The slot at head; the producer reloads tail when its cached copy says the queue is full."""
        head = self._load(self._head_off, "head")
        nxt = head + 1
        return self._pkt + head * SLOT_SIZE, (0 if nxt == self.slots else nxt) == self._cached_tail

    def next_pop(self) -> tuple[int, bool]:
        """The slot at tail; the consumer reloads head when its cached copy says the queue is empty."""
        tail = self._load(self._tail_off, "tail")
        return self._pkt + tail * SLOT_SIZE, tail == self._cached_head

    def push_accesses(self, element: int, nbytes: int, reload: bool) -> tuple[Access, ...]:
        """Reads its own head (4 B, its own line), the consumer's tail if it reloads (4 B, another line);
        writes the frame into the slot and head."""
        tail = (Access(self._tail_off, 4, False),) if reload else ()
        return (Access(self._head_off, 4, False), *tail, Access(element, nbytes, True),
                Access(self._head_off, 4, True))

    def pop_accesses(self, element: int, reload: bool) -> tuple[Access, ...]:
        """Reads its own tail, the producer's head if it reloads (each 4 B on a line of its own) and the whole
        64-byte slot; writes tail."""
        head = (Access(self._head_off, 4, False),) if reload else ()
        return (Access(self._tail_off, 4, False), *head, Access(element, SLOT_SIZE, False),
                Access(self._tail_off, 4, True))

    def look_accesses(self) -> tuple[Access, ...]:
        """An empty pop reads its own tail and reloads head (its cached copy said empty): two lines."""
        return Access(self._tail_off, 4, False), Access(self._head_off, 4, False)


class Spsc2025Queue(_SpscQueue):
    """Q-v1 hardened spsc: u32 indices taken modulo the slot count on load (a bad peer cannot index out)."""

    __slots__ = ()
    FORMAT = "spsc-2025"

    @staticmethod
    def slots_for(size: int) -> int:
        """(size - 128) / 64: 62 for the 4 KiB queue of the QEMU v1 AMP-PCI window (Q-v1)."""
        return (size - PACKETS_OFFSET) // SLOT_SIZE

    def _load(self, off: int, name: str) -> int:
        return _u32(self._buf, off)[0] % self.slots


class Spsc2024Queue(_SpscQueue):
    """Zero ASIC `spsc_queue.h` (Q-2024): int32 indices used as loaded, so an out-of-range one is a DecodeError."""

    __slots__ = ()
    FORMAT = "spsc-2024"

    @staticmethod
    def slots_for(size: int) -> int:
        """`spsc_capacity(mapsize)` = (mapsize - 192) / 64 + 1: 62 for 4 KiB, 14 for 1 KiB (Q-2024)."""
        return (size - (PACKETS_OFFSET + SLOT_SIZE)) // SLOT_SIZE + 1

    def _load(self, off: int, name: str) -> int:
        value = _i32(self._buf, off)[0]
        if not 0 <= value < self.slots:
            raise bad_field(self.FORMAT, name, off, value, f"0..{self.slots - 1}")
        return value


class QueuePair(NamedTuple):
    to_device: ByteQueue
    to_driver: ByteQueue


def create_queue_pair(fmt: str, buf, offset: int = 0, size: int | None = None,
                      element_size: int = SLOT_SIZE) -> QueuePair:
    """Initialise a two-way channel of format `fmt` in `buf[offset:offset + size]` and return both directions.

    `amp-2026`: the whole region is one AMP window laid out as QEMU does, both peers handshaken to RUN.
    `spsc-2025` / `spsc-2024`: driver->device queue in the first half, device->driver in the second, as the
    QEMU buses place them (Q-amp24: 4 KiB each; Q-2024 Xen: 1 KiB each; Q-v1 puts the pair after a 4 KiB
    reserved page: pass offset=4096, size=8192).
    """
    buf = shared_bytes(buf, fmt if isinstance(fmt, str) else "queue pair")
    if size is None:
        size = len(buf) - offset
    if fmt == "amp-2026":
        AmpLayout.init(buf, offset, size, element_size=element_size)
        drv = AmpQueuePeer(buf, offset, "driver", size)
        dev = AmpQueuePeer(buf, offset, "device", size)
        drv.start()
        dev.start()
        drv.poll_handshake()
        dev.poll_handshake()
        if drv.poll_handshake() != RUN or dev.state != RUN:
            raise EncodeError("amp-2026: handshake did not reach RUN")
        return QueuePair(drv.tx, dev.tx)
    classes = {"spsc-2025": Spsc2025Queue, "spsc-2024": Spsc2024Queue}
    if fmt not in classes:
        raise EncodeError(f"unknown queue format {fmt!r}; known: {', '.join(QUEUE_FORMATS)}")
    if element_size != SLOT_SIZE:
        raise EncodeError(f"{fmt}: slots are fixed at {SLOT_SIZE} bytes, not {element_size}")
    half = size // 2
    return QueuePair(classes[fmt].create(buf, offset, half), classes[fmt].create(buf, offset + half, half))
