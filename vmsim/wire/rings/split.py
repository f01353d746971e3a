"""The split virtqueue (virtio 1.2 §2.7): descriptor table, avail ring and used ring, and its two ends."""

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

AVAIL_F_NO_INTERRUPT = 1
"""Split avail.flags: the driver does not want used-buffer notifications (virtio 1.2 §2.7.7)."""
USED_F_NO_NOTIFY = 1
"""Split used.flags: the device does not want available-buffer notifications (virtio 1.2 §2.7.10)."""

_u16 = U16.unpack_from
_p16 = U16.pack_into
_SPLIT_DESC = struct.Struct("<QIHH")   # addr, len, flags, next
_USED_ELEM = struct.Struct("<II")      # id, len


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def split_ring_layout(qsz: int, align: int = 4096) -> tuple[int, int, int, int]:
    """(desc, avail, used, total) for one contiguous split ring: the spec's `virtq_size()` with its ALIGN
    macro (virtio 1.2 §2.7.2, legacy 4096; any power of two >= 4 keeps the modern 16/2/4 alignments)."""
    avail = DESC_SIZE * qsz
    used = _align(avail + 2 * (3 + qsz), align)
    return 0, avail, used, used + _align(2 * 3 + 8 * qsz, align)


class SplitRing:
    """Where one split virtqueue lives: descriptor table, avail ring and used ring (virtio 1.2 §2.7).

    Sizes 16*qsz, 6 + 2*qsz and 6 + 8*qsz, aligned 16, 2 and 4; qsz is a power of two <= 32768.
    """

    __slots__ = ("avail", "buf", "desc", "qsz", "used")

    def __init__(self, buf, qsz: int, desc: int, avail: int, used: int):
        if not (1 <= qsz <= MAX_QUEUE_SIZE and qsz & (qsz - 1) == 0):
            raise DecodeError(f"split ring: queue size {qsz} is not a power of two in 1..{MAX_QUEUE_SIZE}")
        buf = shared_bytes(buf, "split ring")
        check_area(buf, "split ring: descriptor table", desc, 16, DESC_SIZE * qsz)
        check_area(buf, "split ring: avail ring", avail, 2, 6 + 2 * qsz)
        check_area(buf, "split ring: used ring", used, 4, 6 + 8 * qsz)
        self.buf = buf
        self.qsz = qsz
        self.desc = desc
        self.avail = avail
        self.used = used

    @classmethod
    def contiguous(cls, buf, offset: int, qsz: int, align: int = 4096) -> SplitRing:
        """A ring laid out by `split_ring_layout` starting at `offset`."""
        d, a, u, _ = split_ring_layout(qsz, align)
        return cls(buf, qsz, offset + d, offset + a, offset + u)

    def init(self, start_idx: int = 0) -> SplitRing:
        """Zero all three areas and start both indices (and both event words) at `start_idx`."""
        q, buf = self.qsz, self.buf
        buf[self.desc:self.desc + DESC_SIZE * q] = bytes(DESC_SIZE * q)
        buf[self.avail:self.avail + 6 + 2 * q] = bytes(6 + 2 * q)
        buf[self.used:self.used + 6 + 8 * q] = bytes(6 + 8 * q)
        for off in (self.avail + 2, self.used + 2, self.avail + 4 + 2 * q, self.used + 4 + 8 * q):
            try:
                _p16(buf, off, start_idx)
            except struct.error as exc:
                raise EncodeError(f"split ring: start index {start_idx!r} ({exc})") from None
        return self

    def descriptor(self, i: int) -> tuple[int, int, int, int]:
        """Descriptor `i` as (addr, len, flags, next)."""
        return _SPLIT_DESC.unpack_from(self.buf, self.desc + DESC_SIZE * (i % self.qsz))

    @property
    def avail_flags(self) -> int:
        return _u16(self.buf, self.avail)[0]

    @property
    def avail_idx(self) -> int:
        return _u16(self.buf, self.avail + 2)[0]

    @property
    def used_event(self) -> int:
        """Written by the driver: interrupt me when used.idx passes this (EVENT_IDX)."""
        return _u16(self.buf, self.avail + 4 + 2 * self.qsz)[0]

    @property
    def used_flags(self) -> int:
        return _u16(self.buf, self.used)[0]

    @property
    def used_idx(self) -> int:
        return _u16(self.buf, self.used + 2)[0]

    @property
    def avail_event(self) -> int:
        """Written by the device: kick me when avail.idx passes this (EVENT_IDX)."""
        return _u16(self.buf, self.used + 4 + 8 * self.qsz)[0]


class SplitDriver:
    """Driver end of a split ring: add chains, decide kicks, reclaim used buffers.

    Indices are free-running u16 picked up from the ring at construction (so a ring initialised with
    `start_idx` near 0xFFFF exercises the wrap). With `event_idx` (VIRTIO_F_EVENT_IDX negotiated) the
    kick decision reads avail_event, else the used.flags NO_NOTIFY bit.
    """

    __slots__ = ("_avail_idx", "_chains", "_free", "_interrupts", "_last_used", "_num_added", "_tokens",
                 "bytes_read", "bytes_written", "event_idx", "ring")

    def __init__(self, ring: SplitRing, event_idx: bool = False):
        self.ring = ring
        self.event_idx = event_idx
        self._free = list(range(ring.qsz - 1, -1, -1))
        self._chains: list[list[int] | None] = [None] * ring.qsz
        self._tokens: list[object] = [None] * ring.qsz
        self._avail_idx = ring.avail_idx
        self._last_used = ring.used_idx
        self._num_added = 0
        self._interrupts = True
        self.bytes_read = 0
        self.bytes_written = 0

    @property
    def num_free(self) -> int:
        return len(self._free)

    @property
    def added(self) -> int:
        """Chains added since the last `kick_needed`."""
        return self._num_added

    def outstanding(self) -> list[object]:
        """The tokens of the chains the device has not returned yet."""
        return [token for token in self._tokens if token is not None]

    def add(self, chain, token=None) -> int | None:
        """Write `chain` ((addr, len, device_writable) tuples) from the free list and publish its head.

        Returns the head descriptor index, or None when fewer than len(chain) descriptors are free.
        `token` (default: the head) is handed back by `get_used`.
        """
        k = len(chain)
        if k == 0:
            raise EncodeError("split ring: empty descriptor chain")
        free = self._free
        if k > len(free):
            return None
        ids = free[-k:]
        ids.reverse()
        del free[-k:]
        ring = self.ring
        buf, base = ring.buf, ring.desc
        try:
            for i, (addr, length, writable) in enumerate(chain):
                if i + 1 < k:
                    _SPLIT_DESC.pack_into(buf, base + 16 * ids[i], addr, length,
                                          DESC_F_NEXT | DESC_F_WRITE if writable else DESC_F_NEXT, ids[i + 1])
                else:
                    _SPLIT_DESC.pack_into(buf, base + 16 * ids[i], addr, length,
                                          DESC_F_WRITE if writable else 0, 0)
        except (struct.error, TypeError, ValueError) as exc:
            free.extend(reversed(ids))
            raise EncodeError(f"split ring: bad descriptor in chain {chain!r} ({exc})") from None
        head = ids[0]
        self._chains[head] = ids
        self._tokens[head] = head if token is None else token
        idx = self._avail_idx
        _p16(buf, ring.avail + 4 + 2 * (idx & (ring.qsz - 1)), head)
        idx = (idx + 1) & 0xFFFF
        _p16(buf, ring.avail + 2, idx)
        self._avail_idx = idx
        self._num_added += 1
        self.bytes_written += 16 * k + 4
        return head

    def kick_needed(self) -> bool:
        """Whether the buffers added since the last call need an available-buffer notification."""
        new = self._avail_idx
        old = (new - self._num_added) & 0xFFFF
        self._num_added = 0
        ring = self.ring
        self.bytes_read += 2
        if self.event_idx:
            return need_event(_u16(ring.buf, ring.used + 4 + 8 * ring.qsz)[0], new, old)
        return not _u16(ring.buf, ring.used)[0] & USED_F_NO_NOTIFY

    def get_used(self) -> tuple[object, int] | None:
        """Reclaim the next used buffer: (token, bytes the device wrote), or None when nothing is used."""
        ring = self.ring
        buf, q = ring.buf, ring.qsz
        used_idx = _u16(buf, ring.used + 2)[0]
        self.bytes_read += 2
        last = self._last_used
        if used_idx == last:
            return None
        if (used_idx - last) & 0xFFFF > q:
            raise bad_field("split ring", "used.idx", ring.used + 2, used_idx,
                            f"at most {q} ahead of the last seen {last:#x}")
        off = ring.used + 4 + 8 * (last & (q - 1))
        head, length = _USED_ELEM.unpack_from(buf, off)
        self.bytes_read += 8
        ids = self._chains[head] if head < q else None
        if ids is None:
            raise bad_field("split ring", "used.ring[].id", off, head, "the head of a chain in flight")
        self._chains[head] = None
        self._free.extend(reversed(ids))
        token, self._tokens[head] = self._tokens[head], None
        last = (last + 1) & 0xFFFF
        self._last_used = last
        if self.event_idx and self._interrupts:
            _p16(buf, ring.avail + 4 + 2 * q, last)
            self.bytes_written += 2
        return token, length

    def set_interrupts(self, enabled: bool) -> None:
        """Ask for (or stop) used-buffer notifications: avail.flags NO_INTERRUPT, or used_event with EVENT_IDX."""
        ring = self.ring
        self._interrupts = enabled
        if not self.event_idx:
            _p16(ring.buf, ring.avail, 0 if enabled else AVAIL_F_NO_INTERRUPT)
        elif enabled:
            _p16(ring.buf, ring.avail + 4 + 2 * ring.qsz, self._last_used)
        else:
            return
        self.bytes_written += 2


class SplitDevice:
    """Device end of a split ring: pop available chains, push used entries, decide interrupts."""

    __slots__ = ("_last_avail", "_notify", "_num_added", "_used_idx", "bytes_read", "bytes_written",
                 "event_idx", "ring")

    def __init__(self, ring: SplitRing, event_idx: bool = False):
        self.ring = ring
        self.event_idx = event_idx
        self._last_avail = ring.avail_idx
        self._used_idx = ring.used_idx
        self._num_added = 0
        self._notify = True
        self.bytes_read = 0
        self.bytes_written = 0

    def pending(self) -> int:
        """Chains the driver made available that were not popped yet."""
        self.bytes_read += 2
        return (_u16(self.ring.buf, self.ring.avail + 2)[0] - self._last_avail) & 0xFFFF

    def pop(self) -> tuple[int, list[tuple[int, int, int, int]]] | None:
        """The next available chain as (head, [(addr, len, flags, next), ...]), or None."""
        ring = self.ring
        buf, q, last = ring.buf, ring.qsz, self._last_avail
        avail_idx = _u16(buf, ring.avail + 2)[0]
        self.bytes_read += 2
        if avail_idx == last:
            return None
        if (avail_idx - last) & 0xFFFF > q:
            raise bad_field("split ring", "avail.idx", ring.avail + 2, avail_idx,
                            f"at most {q} ahead of the last seen {last:#x}")
        off = ring.avail + 4 + 2 * (last & (q - 1))
        head = _u16(buf, off)[0]
        if head >= q:
            raise bad_field("split ring", "avail.ring[]", off, head, f"< {q}")
        chain = []
        i = head
        while True:
            d = _SPLIT_DESC.unpack_from(buf, ring.desc + 16 * i)
            chain.append(d)
            if not d[2] & DESC_F_NEXT:
                break
            prev, i = i, d[3]
            if i >= q:
                raise bad_field("split ring", "desc.next", ring.desc + 16 * prev + 14, i, f"< {q}")
            if len(chain) >= q:
                raise DecodeError(f"split ring: chain from head {head} (desc.next at offset "
                                  f"{ring.desc + 16 * prev + 14}) is longer than the queue size {q}")
        self.bytes_read += 2 + 16 * len(chain)
        last = (last + 1) & 0xFFFF
        self._last_avail = last
        if self.event_idx and self._notify:
            _p16(buf, ring.used + 4 + 8 * q, last)
            self.bytes_written += 2
        return head, chain

    def push_used(self, head: int, length: int) -> None:
        """Return chain `head` to the driver with `length` bytes written into its buffers."""
        ring = self.ring
        q = ring.qsz
        if not 0 <= head < q:
            raise EncodeError(f"split ring: used id {head!r} outside 0..{q - 1}")
        idx = self._used_idx
        try:
            _USED_ELEM.pack_into(ring.buf, ring.used + 4 + 8 * (idx & (q - 1)), head, length)
        except struct.error as exc:
            raise EncodeError(f"split ring: used len {length!r} ({exc})") from None
        idx = (idx + 1) & 0xFFFF
        _p16(ring.buf, ring.used + 2, idx)
        self._used_idx = idx
        self._num_added += 1
        self.bytes_written += 10

    def interrupt_needed(self) -> bool:
        """Whether the entries pushed since the last call need a used-buffer notification."""
        new = self._used_idx
        old = (new - self._num_added) & 0xFFFF
        self._num_added = 0
        ring = self.ring
        self.bytes_read += 2
        if self.event_idx:
            return need_event(_u16(ring.buf, ring.avail + 4 + 2 * ring.qsz)[0], new, old)
        return not _u16(ring.buf, ring.avail)[0] & AVAIL_F_NO_INTERRUPT

    def set_notify(self, enabled: bool) -> None:
        """Ask for (or stop) kicks: used.flags NO_NOTIFY, or avail_event with EVENT_IDX."""
        ring = self.ring
        self._notify = enabled
        if not self.event_idx:
            _p16(ring.buf, ring.used, 0 if enabled else USED_F_NO_NOTIFY)
        elif enabled:
            _p16(ring.buf, ring.used + 4 + 8 * ring.qsz, self._last_avail)
        else:
            return
        self.bytes_written += 2
