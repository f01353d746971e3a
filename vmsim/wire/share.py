"""vmsim-share: vmsim's own bus messages for sharing memory with acknowledgements (vmsim-defined).

No published virtio-msg message set shares, unshares and acknowledges a buffer with its bus address,
size, offset, operation and memory type (reference §7: "not found ... treat that as unpublished"), so
vmsim defines one, in the bus message ranges S-pr28 leaves to implementations (0x80-0xBF requests,
0xC0-0xFF events), clear of the FF-A bus's 0x80-0x87 and 0xC0. The ``vmsim-share`` layout is v1 plus
these messages; nothing outside vmsim speaks them.

===========  =====  ==========================  ==============================================
message      id     kind                        meaning
===========  =====  ==========================  ==============================================
SHM_SHARE    0xA0   request (driver -> device)  op SHARE: take this region; answered op SHARE_ACK
SHM_UNSHARE  0xA1   request (driver -> device)  op UNSHARE: give it back; answered op UNSHARE_ACK
SHM_RELEASE  0xE0   event (device -> driver)    op UNSHARE: the device gave the region back itself
===========  =====  ==========================  ==============================================

A request carries the region's descriptor (32 bytes): ``share_id u32 @0, op u8 @4, mem_type u8 @5,
count u16 @6`` (buffers in the region), ``bus_address u64 @8`` (where the device finds the region),
``offset u64 @16`` (the region's place in the heap it came from), ``size u64 @24``. The answer is
``share_id u32, op u8, result u8`` (the FF-A bus's codes: 0 success, 1 error, 2 busy), ``reserved u16``.
The header's ``dev_num`` names the device the region is for.

The published forms of the same steps, also in `vmsim.wire`:

==================  ===================================  =====================================
vmsim-share         FF-A bus (`vmsim.wire.ffa`, §4.5)    vsock OP_SHMEM (`vmsim.wire.vsock`, §7)
==================  ===================================  =====================================
SHM_SHARE           FFA_MEM_SHARE + AREA_SHARE           subop OFFER
SHM_UNSHARE         AREA_UNSHARE (+ FFA_MEM_RELINQUISH)  subop RELINQUISH (Linux: REVOKE)
SHM_RELEASE         AREA_RELEASE event                   (none: the peer relinquishes silently)
(reclaim, local)    FFA_MEM_RECLAIM                      subop RECLAIM
==================  ===================================  =====================================
"""

from __future__ import annotations

from enum import IntEnum

from vmsim.wire.ffa import Result
from vmsim.wire.fields import event, pair, reserved, u8, u16, u32, u64

SHM_SHARE, SHM_UNSHARE = 0xA0, 0xA1
SHM_RELEASE = 0xE0

__all__ = ["MESSAGES", "SHM_RELEASE", "SHM_SHARE", "SHM_UNSHARE", "MemType", "Op", "Result"]


class Op(IntEnum):
    """The descriptor's ``op``: what the sender asks (SHARE, UNSHARE) or confirms (the acks)."""

    SHARE = 0
    UNSHARE = 1
    SHARE_ACK = 2
    UNSHARE_ACK = 3


class MemType(IntEnum):
    """The descriptor's ``mem_type``: how the device must map the region."""

    NORMAL = 0  # write-back cacheable
    NON_CACHEABLE = 1
    DEVICE = 2


def _descriptor() -> tuple:
    return (u32("share_id"), u8("op"), u8("mem_type"), u16("count"), u64("bus_address"), u64("offset"),
            u64("size"))


def _answer() -> tuple:
    return (u32("share_id"), u8("op"), u8("result"), reserved("reserved", "H"))


MESSAGES = (
    *pair("SHM_SHARE", SHM_SHARE, _descriptor(), _answer(), bus=True),
    *pair("SHM_UNSHARE", SHM_UNSHARE, _descriptor(), _answer(), bus=True),
    *event("SHM_RELEASE", SHM_RELEASE, _descriptor(), bus=True),
)
