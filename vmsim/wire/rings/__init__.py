"""Virtqueue rings of virtio 1.x as views over shared memory: split (virtio 1.2 §2.7), packed (§2.8).

A ring class (`SplitRing`, `PackedRing`) knows only where the areas are. The driver and device ends
(`SplitDriver` / `SplitDevice`, `PackedDriver` / `PackedDevice`) keep their private state the way Linux
and QEMU do (free list, shadow indices, wrap counters; none of it in shared memory) and touch the
shared areas through single `pack_into` / `unpack_from` calls.

Shapes returned: a descriptor chain is a list of the raw tuples of the spec's struct, split
`(addr, len, flags, next)` and packed `(addr, len, id, flags)`; a driver supplies a chain as
`(addr, len, device_writable)` tuples.

Byte accounting: every end accumulates `bytes_read` / `bytes_written`, the shared-memory bytes its
operations loaded or stored (descriptors, ring slots, indices, flags, event words; distinct bytes per
op). Buffers the descriptors point at are not counted: the caller moves those.

Bad bytes (an index, id or `next` out of range, a chain longer than the queue, an index that moved
more than the queue size) raise DecodeError naming the field and its byte offset.

=======  ==============================================================================
module   what it holds
=======  ==============================================================================
common   descriptor size and flags, the queue-size limit, `need_event`, the area check
split    `SplitRing`, `SplitDriver`, `SplitDevice`, `split_ring_layout`, split ring flags
packed   `PackedRing`, `PackedDriver`, `PackedDevice`, `packed_ring_size`, event flags
=======  ==============================================================================

The feature bits that choose among these (EVENT_IDX, INDIRECT_DESC, RING_PACKED) are in `vmsim.wire.virtio`.
"""

from vmsim.wire.rings.common import (
    DESC_F_INDIRECT,
    DESC_F_NEXT,
    DESC_F_WRITE,
    DESC_SIZE,
    MAX_QUEUE_SIZE,
    need_event,
)
from vmsim.wire.rings.packed import (
    EVENT_FLAGS_DESC,
    EVENT_FLAGS_DISABLE,
    EVENT_FLAGS_ENABLE,
    PACKED_DESC_F_AVAIL,
    PACKED_DESC_F_USED,
    PackedDevice,
    PackedDriver,
    PackedRing,
    packed_ring_size,
)
from vmsim.wire.rings.split import (
    AVAIL_F_NO_INTERRUPT,
    USED_F_NO_NOTIFY,
    SplitDevice,
    SplitDriver,
    SplitRing,
    split_ring_layout,
)

__all__ = [
    "AVAIL_F_NO_INTERRUPT",
    "DESC_F_INDIRECT",
    "DESC_F_NEXT",
    "DESC_F_WRITE",
    "DESC_SIZE",
    "EVENT_FLAGS_DESC",
    "EVENT_FLAGS_DISABLE",
    "EVENT_FLAGS_ENABLE",
    "MAX_QUEUE_SIZE",
    "PACKED_DESC_F_AVAIL",
    "PACKED_DESC_F_USED",
    "USED_F_NO_NOTIFY",
    "PackedDevice",
    "PackedDriver",
    "PackedRing",
    "SplitDevice",
    "SplitDriver",
    "SplitRing",
    "need_event",
    "packed_ring_size",
    "split_ring_layout",
]
