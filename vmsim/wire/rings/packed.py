"""The packed virtqueue (virtio 1.2 §2.8): a descriptor ring, two event-suppression words, its ends."""

from __future__ import annotations

import struct

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire._view import U16, bad_field, shared_bytes
from vmsim.wire.rings.common import (
    DESC_F_NEXT,
    DESC_F_WRITE,
    DESC_SIZE,
    MAX_QUEUE_SIZE,
    check_area,
    need_event,
)

PACKED_DESC_F_AVAIL = 1 << 7
PACKED_DESC_F_USED = 1 << 15
"""Packed descriptor AVAIL/USED bits compared against the wrap counters (virtio 1.2 §2.8.1)."""
EVENT_FLAGS_ENABLE = 0
EVENT_FLAGS_DISABLE = 1
EVENT_FLAGS_DESC = 2
"""Packed event-suppression `desc_event_flags` (virtio 1.2 §2.8.10)."""

_u16 = U16.unpack_from
_p16 = U16.pack_into
_PACKED_DESC = struct.Struct("<QIHH")  # addr, len, id, flags
_PACKED_USED = struct.Struct("<IHH")   # len, id, flags (the device leaves addr alone)
_EVENT = struct.Struct("<HH")          # desc_event_off_wrap, desc_event_flags


def packed_ring_size(qsz: int) -> int:
    """Descriptor ring plus the driver and device event-suppression words (virtio 1.2 §2.8.10)."""
    return DESC_SIZE * qsz + 8


class PackedRing:
    """Where one packed virtqueue lives: descriptor ring (align 16) and the driver and device
    event-suppression structures (4 bytes each, align 4) (virtio 1.2 §2.8). Any qsz in 1..32768."""

    __slots__ = ("buf", "desc", "device_event", "driver_event", "qsz")

    def __init__(self, buf, qsz: int, desc: int, driver_event: int, device_event: int):
        if not 1 <= qsz <= MAX_QUEUE_SIZE:
            raise DecodeError(f"packed ring: queue size {qsz} outside 1..{MAX_QUEUE_SIZE}")
        buf = shared_bytes(buf, "packed ring")
        check_area(buf, "packed ring: descriptor ring", desc, 16, DESC_SIZE * qsz)
        check_area(buf, "packed ring: driver event suppression", driver_event, 4, 4)
        check_area(buf, "packed ring: device event suppression", device_event, 4, 4)
        self.buf = buf
        self.qsz = qsz
        self.desc = desc
        self.driver_event = driver_event
        self.device_event = device_event

    @classmethod
    def contiguous(cls, buf, offset: int, qsz: int) -> PackedRing:
        """Descriptor ring at `offset`, then the driver and the device event structures."""
        return cls(buf, qsz, offset, offset + DESC_SIZE * qsz, offset + DESC_SIZE * qsz + 4)

    def init(self) -> PackedRing:
        """Zero descriptors (nothing available: both wrap counters start at 1) and both event words."""
        buf = self.buf
        buf[self.desc:self.desc + DESC_SIZE * self.qsz] = bytes(DESC_SIZE * self.qsz)
        buf[self.driver_event:self.driver_event + 4] = bytes(4)
        buf[self.device_event:self.device_event + 4] = bytes(4)
        return self

    def descriptor(self, i: int) -> tuple[int, int, int, int]:
        """Descriptor `i` as (addr, len, id, flags)."""
        return _PACKED_DESC.unpack_from(self.buf, self.desc + DESC_SIZE * (i % self.qsz))


def _event_needed(buf, off: int, qsz: int, wrap: int, new: int, old: int) -> bool:
    """The packed notification decision from one event-suppression structure (virtio 1.2 §2.8.10)."""
    off_wrap, flags = _EVENT.unpack_from(buf, off)
    if flags != EVENT_FLAGS_DESC:
        return flags != EVENT_FLAGS_DISABLE
    event = off_wrap & 0x7FFF
    if off_wrap >> 15 != wrap:
        event -= qsz
    return need_event(event, new, old)


def _store_event(buf, off: int, mode: int, pos: int, wrap: int) -> None:
    if mode not in (EVENT_FLAGS_ENABLE, EVENT_FLAGS_DISABLE, EVENT_FLAGS_DESC):
        raise EncodeError(f"packed ring: event flags {mode!r} not ENABLE 0, DISABLE 1 or DESC 2")
    if mode == EVENT_FLAGS_DESC:
        _EVENT.pack_into(buf, off, pos | wrap << 15, mode)
    else:
        _p16(buf, off + 2, mode)


class PackedDriver:
    """Driver end of a packed ring: add chains (AVAIL = wrap, USED = !wrap), decide kicks, reclaim."""

    __slots__ = ("_avail_wrap", "_event_mode", "_free_ids", "_last_used", "_next_avail", "_num", "_num_added",
                 "_tokens", "_used_wrap", "bytes_read", "bytes_written", "num_free", "ring")

    def __init__(self, ring: PackedRing):
        q = ring.qsz
        self.ring = ring
        self._next_avail = 0
        self._avail_wrap = 1
        self._last_used = 0
        self._used_wrap = 1
        self._free_ids = list(range(q - 1, -1, -1))
        self._num = [0] * q
        self._tokens: list[object] = [None] * q
        self._num_added = 0
        self._event_mode = EVENT_FLAGS_ENABLE
        self.num_free = q
        self.bytes_read = 0
        self.bytes_written = 0

    def add(self, chain, token=None) -> int | None:
        """Write `chain` ((addr, len, device_writable) tuples) at the next ring slots, head flags last.

        Returns the buffer id, or None when fewer than len(chain) slots are free.
        """
        k = len(chain)
        if k == 0:
            raise EncodeError("packed ring: empty descriptor chain")
        if k > self.num_free:
            return None
        ring = self.ring
        buf, base, q = ring.buf, ring.desc, ring.qsz
        bid = self._free_ids[-1]
        pos, wrap = self._next_avail, self._avail_wrap
        writes = []
        try:
            for i, (addr, length, writable) in enumerate(chain):
                flags = PACKED_DESC_F_AVAIL if wrap else PACKED_DESC_F_USED
                if writable:
                    flags |= DESC_F_WRITE
                if i + 1 < k:
                    flags |= DESC_F_NEXT
                writes.append((base + 16 * pos, addr, length, flags))
                pos += 1
                if pos == q:
                    pos = 0
                    wrap ^= 1
            for off, addr, length, flags in (*writes[1:], writes[0]):
                _PACKED_DESC.pack_into(buf, off, addr, length, bid, flags)
        except (struct.error, TypeError, ValueError) as exc:
            raise EncodeError(f"packed ring: bad descriptor in chain {chain!r} ({exc})") from None
        self._free_ids.pop()
        self._num[bid] = k
        self._tokens[bid] = bid if token is None else token
        self._next_avail, self._avail_wrap = pos, wrap
        self.num_free -= k
        self._num_added += k
        self.bytes_written += 16 * k
        return bid

    def kick_needed(self) -> bool:
        """Whether the descriptors added since the last call need a notification (device event structure)."""
        new = self._next_avail
        old = new - self._num_added
        self._num_added = 0
        self.bytes_read += 4
        ring = self.ring
        return _event_needed(ring.buf, ring.device_event, ring.qsz, self._avail_wrap, new, old)

    def get_used(self) -> tuple[object, int] | None:
        """Reclaim the next used buffer: (token, bytes written), or None if the slot is not used yet."""
        ring = self.ring
        buf, q = ring.buf, ring.qsz
        off = ring.desc + 16 * self._last_used
        flags = _u16(buf, off + 14)[0]
        wrap = self._used_wrap
        if bool(flags & PACKED_DESC_F_AVAIL) != wrap or bool(flags & PACKED_DESC_F_USED) != wrap:
            self.bytes_read += 2
            return None
        length, bid = _PACKED_DESC.unpack_from(buf, off)[1:3]
        self.bytes_read += 8
        n = self._num[bid] if bid < q else 0
        if not n:
            raise bad_field("packed ring", "desc.id", off + 12, bid, "a buffer id in flight")
        self._num[bid] = 0
        token, self._tokens[bid] = self._tokens[bid], None
        self._free_ids.append(bid)
        self.num_free += n
        pos = self._last_used + n
        if pos >= q:
            pos -= q
            self._used_wrap = wrap ^ 1
        self._last_used = pos
        if self._event_mode == EVENT_FLAGS_DESC:
            _p16(buf, ring.driver_event, pos | self._used_wrap << 15)
            self.bytes_written += 2
        return token, length

    def set_interrupts(self, mode: int) -> None:
        """Driver event suppression: ENABLE, DISABLE, or DESC (interrupt at the next used slot; EVENT_IDX)."""
        ring = self.ring
        _store_event(ring.buf, ring.driver_event, mode, self._last_used, self._used_wrap)
        self._event_mode = mode
        self.bytes_written += 4


class PackedDevice:
    """Device end of a packed ring: pop available chains, mark them used, decide interrupts."""

    __slots__ = ("_avail_wrap", "_next_avail", "_next_used", "_num_added", "_pending", "_used_wrap",
                 "bytes_read", "bytes_written", "ring")

    def __init__(self, ring: PackedRing):
        self.ring = ring
        self._next_avail = 0
        self._avail_wrap = 1
        self._next_used = 0
        self._used_wrap = 1
        self._pending: dict[int, int] = {}
        self._num_added = 0
        self.bytes_read = 0
        self.bytes_written = 0

    def pop(self) -> tuple[int, list[tuple[int, int, int, int]]] | None:
        """The next available chain as (buffer id, [(addr, len, id, flags), ...]), or None.

        The buffer id is the one in the chain's last descriptor (virtio 1.2 §2.8.6).
        """
        ring = self.ring
        buf, base, q = ring.buf, ring.desc, ring.qsz
        pos, wrap = self._next_avail, self._avail_wrap
        flags = _u16(buf, base + 16 * pos + 14)[0]
        if bool(flags & PACKED_DESC_F_AVAIL) != wrap or bool(flags & PACKED_DESC_F_USED) == wrap:
            self.bytes_read += 2
            return None
        chain = []
        while True:
            d = _PACKED_DESC.unpack_from(buf, base + 16 * pos)
            chain.append(d)
            pos += 1
            if pos == q:
                pos = 0
                wrap ^= 1
            if not d[3] & DESC_F_NEXT:
                break
            if len(chain) >= q:
                raise DecodeError(f"packed ring: chain starting at offset {base + 16 * self._next_avail} "
                                  f"is longer than the queue size {q}")
        self.bytes_read += 16 * len(chain)
        bid = chain[-1][2]
        if bid in self._pending:
            raise bad_field("packed ring", "desc.id", base + 16 * ((pos - 1) % q) + 12, bid,
                            "a buffer id not already in flight")
        self._pending[bid] = len(chain)
        self._next_avail, self._avail_wrap = pos, wrap
        return bid, chain

    def mark_used(self, bid: int, length: int) -> None:
        """Write one used descriptor for buffer `bid` (AVAIL = USED = wrap) and skip its chain length."""
        n = self._pending.pop(bid, None)
        if n is None:
            raise EncodeError(f"packed ring: buffer id {bid!r} is not in flight")
        ring = self.ring
        flags = PACKED_DESC_F_AVAIL | PACKED_DESC_F_USED if self._used_wrap else 0
        try:
            _PACKED_USED.pack_into(ring.buf, ring.desc + 16 * self._next_used + 8, length, bid, flags)
        except struct.error as exc:
            self._pending[bid] = n
            raise EncodeError(f"packed ring: used len {length!r} ({exc})") from None
        pos = self._next_used + n
        if pos >= ring.qsz:
            pos -= ring.qsz
            self._used_wrap ^= 1
        self._next_used = pos
        self._num_added += n
        self.bytes_written += 8

    def interrupt_needed(self) -> bool:
        """Whether the used descriptors since the last call need an interrupt (driver event structure)."""
        new = self._next_used
        old = new - self._num_added
        self._num_added = 0
        self.bytes_read += 4
        ring = self.ring
        return _event_needed(ring.buf, ring.driver_event, ring.qsz, self._used_wrap, new, old)

    def set_notify(self, mode: int) -> None:
        """Device event suppression: ENABLE, DISABLE, or DESC (kick at the next available slot; EVENT_IDX)."""
        ring = self.ring
        _store_event(ring.buf, ring.device_event, mode, self._next_avail, self._avail_wrap)
        self.bytes_written += 4
