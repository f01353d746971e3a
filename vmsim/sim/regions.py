"""What memory shared under a policy is made of: regions of whole pages, the buffers carved from them, and
the heap they are allocated from (`vmsim.sim.sharing`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmsim.wire.memory import PAGE, pages

if TYPE_CHECKING:
    from vmsim.sim.sharing import ShareDriver


class Region:
    """Whole pages of the heap shared as one unit: `count` buffers of `slot` bytes each."""

    __slots__ = ("acked", "buffers", "bus_address", "count", "dev_num", "epoch", "handle", "id", "in_flight",
                 "offset", "owner", "pages", "retired", "size", "slot", "state")

    def __init__(self, owner: ShareDriver, offset: int, slot: int, count: int):
        self.owner = owner
        self.dev_num = owner.dev_num
        self.offset = offset
        self.slot = slot
        self.count = count
        self.size = slot * count
        self.pages = pages(self.size)
        self.id = -1  # given by the bus in `prepare_share` (an FF-A area id, a Xen or carve-out share id)
        self.bus_address = 0
        self.handle = 0  # the mechanism's own name for it: an FF-A memory handle, a first grant reference
        self.state = "allocated"
        self.acked = False  # the device acknowledged the share: its pages count as shared until reclaimed
        self.in_flight = 0
        self.retired = 0
        self.epoch = 0  # bumped each time the region starts to linger, so that a stale timer does nothing
        self.buffers: list[Buffer] = []

    def descriptor(self, op: int) -> dict:
        """The region as the fields of a vmsim-share message."""
        return {"share_id": self.id, "op": op, "mem_type": self.owner.mem_type, "count": self.count,
                "bus_address": self.bus_address, "offset": self.offset, "size": self.size}


class Buffer:
    """One buffer of a region: what a request's descriptor points at, for `uses` requests or until `expires`."""

    __slots__ = ("address", "expires", "region", "size", "uses")

    def __init__(self, region: Region, address: int, uses: int | None, expires: int | None):
        self.region = region
        self.address = address
        self.size = region.slot
        self.uses = uses
        self.expires = expires


class Heap:
    """The heap a device's buffers come from: `size` bytes the bus provides, whole pages, first fit."""

    def __init__(self, size: int):
        self.free: list[list[int]] = [[0, size // PAGE]]  # [first page, pages], in address order

    def take(self, count: int) -> int | None:
        """The byte offset of `count` free pages, or None when no run is long enough."""
        for run in self.free:
            if run[1] >= count:
                first = run[0]
                run[0] += count
                run[1] -= count
                if not run[1]:
                    self.free.remove(run)
                return first * PAGE
        return None

    def give(self, offset: int, count: int) -> None:
        first = offset // PAGE
        runs = self.free
        at = next((i for i, run in enumerate(runs) if run[0] > first), len(runs))
        runs.insert(at, [first, count])
        for i in (at, at - 1):  # merge with the run after, then with the one before
            if 0 <= i < len(runs) - 1 and runs[i][0] + runs[i][1] == runs[i + 1][0]:
                runs[i][1] += runs.pop(i + 1)[1]
