"""The FF-A bus's sharing mechanism: FFA_MEM_SHARE/LEND, RETRIEVE, RELINQUISH and RECLAIM with the AREA_*
messages, for the pool, per-buffer sharing and regions shared under a policy (`vmsim.sim.sharing`)."""

from __future__ import annotations

from vmsim.buses.ffa.partition import Side
from vmsim.wire.ffa import (
    Cacheability,
    MemoryType,
    Result,
    SharingAttrs,
    bus_address,
    split_bus_address,
)
from vmsim.wire.memory import pages
from vmsim.wire.share import MemType


class FfaMemory:
    """The memory half of `FfaBus` (a mixin over its state): the partition's side of AREA_UNSHARE, the memory
    calls, areas and the request-buffer and region hooks of the bus interface."""

    def _unshare(self, area_id: int) -> Result:
        """AREA_UNSHARE at the partition: BUSY while a buffer in the area is still mapped (O-new),
        else FFA_MEM_RELINQUISH."""
        if area_id not in self._areas:
            return Result.ERROR
        spent = self._relinquish(area_id)
        if spent is None:
            return Result.BUSY
        self.owe(spent)
        return Result.SUCCESS

    def _retrieve(self, area_id: int, pages: int) -> int:
        """FFA_MEM_RETRIEVE_REQ at the partition: the area joins its table; the call's time."""
        self._areas[area_id] = [pages, 0]
        return self._memory_call(self.device_side, "ffa.mem_retrieve_req", self.costs.mem_retrieve, pages)

    def _relinquish(self, area_id: int) -> int | None:
        """FFA_MEM_RELINQUISH at the partition, and the area leaves its table; the call's time, or None while a
        buffer in the area is still mapped."""
        pages, mapped = self._areas[area_id]
        if mapped:
            return None
        del self._areas[area_id]
        return self._memory_call(self.device_side, "ffa.mem_relinquish", self.costs.mem_relinquish, pages,
                                 self.costs.tlb_maintenance)

    def _owe(self, event: str, op, pages: int, extra: int = 0) -> None:
        """A partition-side FF-A memory call made while answering: logged now, its time paid before the answer."""
        self.owe(self._memory_call(self.device_side, event, op, pages, extra))

    def _memory_call(self, side: Side, event: str, op, pages: int, extra: int = 0) -> int:
        """Log an FF-A memory call and return its time: the crossing, fixed + per page, TLB maintenance."""
        self._mark(side.component, event, -1, pages)
        return side.call + op.fixed + pages * op.per_page + extra

    # --- memory: the driver side ---------------------------------------------------------------------

    def _mem_call(self, event: str, op, pages: int, extra: int = 0):
        yield self.env.timeout(self._memory_call(self.driver_side, event, op, pages, extra))

    def _mem_share(self, pages: int, lend: bool = False):
        """FFA_MEM_SHARE (or LEND, which also takes the pages out of the owner's stage 2): a handle."""
        yield from self._mem_call("ffa.mem_lend" if lend else "ffa.mem_share", self.costs.mem_share, pages,
                                  self.costs.tlb_maintenance if lend else 0)
        self._handles += 1
        self.counts["shares"] += 1
        return self._handles

    def _share_area(self, pages: int, kick=None):
        """FFA_MEM_SHARE (or LEND), then AREA_SHARE under a free area id; the partition retrieves the pages.

        With every id taken, `kick` (dev_num, vq) is notified first, so that buffers published before
        this one get served and give their areas back (as a driver kicks before it waits for DMA space).
        """
        handle = yield from self._mem_share(pages, self.spec.share_op == "lend")
        area = yield from self._take_area(None if kick is None else (lambda: self.notify_device(*kick)))
        yield from self._bus_call("AREA_SHARE", self.generation.area_share(area, handle, pages, self._attrs))
        self._driver_areas[area] = pages
        return area

    def _take_area(self, before_wait):
        """A free area id; with every id taken, run `before_wait` first, then wait for a reclaim."""
        if not self._free_areas and before_wait is not None:
            yield from before_wait()
        while not self._free_areas:
            yield self._areas_changed
        return self._free_areas.popleft()

    def _unshare_area(self, area: int):
        """AREA_UNSHARE (retried on BUSY, 20 ms doubling to 100 ms, 20 tries: L-26 common.c) or the
        device's AREA_RELEASE, then FFA_MEM_RECLAIM and the area id is free again."""
        if self.spec.release == "device":
            while area not in self._released:
                yield self._areas_changed
            self._released.discard(area)
        else:
            delay = self.spec.mem_backoff
            for attempt in range(1, self.spec.mem_retries + 1):
                result = (yield from self._bus_call("AREA_UNSHARE", {"area_id": area}))["result"]
                if result != Result.BUSY:
                    break
                self.counts["mem_busy"] += 1
                self._mark(self.driver_side.component, "ffa.busy", -1, attempt)
                if attempt < self.spec.mem_retries:
                    yield self.env.timeout(delay)
                    delay = min(2 * delay, self.spec.mem_backoff_max)
            if result != Result.SUCCESS:
                return  # still shared: the area and its pages stay lost to the driver, as in L-26
        yield from self._reclaim_area(area, self._driver_areas.pop(area))

    def _reclaim_area(self, area: int, pages: int):
        """FFA_MEM_RECLAIM: the pages are the driver's again and the area id is free."""
        yield from self._mem_call("ffa.mem_reclaim", self.costs.mem_reclaim, pages)
        self.counts["reclaims"] += 1
        self._free_areas.append(area)
        self._area_event()

    def _area_event(self) -> None:
        self._areas_changed.succeed()
        self._areas_changed = self.env.event()

    def _bus_event(self, frame) -> None:
        if frame.name != "AREA_RELEASE":
            super()._bus_event(frame)
        elif frame["area_id"] in self.regions:
            region = self.regions[frame["area_id"]]
            region.owner.on_release(region)
        else:
            self._released.add(frame["area_id"])
            self._area_event()

    # --- request buffers -------------------------------------------------------------------------------

    def share_buffer(self, dev_num: int, vq: int, request):
        if self._pool is not None:
            return bus_address(self._pool, 0, self._shift)
        area = yield from self._share_area(pages(request.size), (dev_num, vq))
        self._buffer_area[request] = area
        return bus_address(area, 0, self._shift)

    def release_buffer(self, dev_num: int, vq: int, request):
        area = self._buffer_area.pop(request, None)
        if area is not None:
            yield from self._unshare_area(area)

    def map_buffer(self, device, vq: int, chain):
        """The partition serves the buffer on one of its vCPUs; the device translates its bus addresses."""
        vcpu = self.partition.vcpus.request()
        yield vcpu
        self._serving[(device.dev_num, vq)] = (vcpu, self.env.now)
        for descriptor in chain:
            area = self._areas.get(split_bus_address(descriptor[0], self._shift)[0])
            if area is None:
                self.counts["unmapped_access"] += 1
            else:
                area[1] += 1

    def unmap_buffer(self, device, vq: int, chain):
        self.partition.leave(*self._serving.pop((device.dev_num, vq)))
        for descriptor in chain:
            area_id = split_bus_address(descriptor[0], self._shift)[0]
            if area_id not in self._areas:
                continue
            if self.spec.unmap_delay:
                self.env.process(self._unmap(area_id, self.spec.unmap_delay))
            else:
                yield from self._unmap(area_id, 0)

    def _unmap(self, area_id: int, delay: int):
        """Drop one mapping (`delay` later: a lazy unmap). With `release: device` the partition then
        relinquishes the area itself and tells the driver with AREA_RELEASE."""
        if delay:
            yield self.env.timeout(delay)
        area = self._areas[area_id]
        area[1] -= 1
        if self.spec.release == "device" and not area[1]:
            yield self.env.timeout(self._relinquish(area_id))
            yield from self.event_to_driver(0, self._encode("AREA_RELEASE", "event", {"area_id": area_id}))

    # --- memory shared under a policy: the FF-A mechanism -------------------------------------------------

    def new_share_id(self, region, before_wait):
        """A free area id of the partition's table."""
        region.id = yield from self._take_area(before_wait)

    def prepare_share(self, region):
        """FFA_MEM_SHARE (or LEND) of the region's pages: its memory handle; bus addresses in its area."""
        region.handle = yield from self._mem_share(region.pages, self.spec.share_op == "lend")
        region.bus_address = bus_address(region.id, 0, self._shift)

    def share_frame(self, region) -> bytes:
        """AREA_SHARE, its sharing attributes saying how the device maps the region."""
        kind = region.owner.mem_type
        attrs = SharingAttrs(type=self._share_type,
                             cacheability=Cacheability.NON if kind == MemType.NON_CACHEABLE else Cacheability.WRITE_BACK,
                             memory_type=MemoryType.DEVICE if kind == MemType.DEVICE else MemoryType.NORMAL)
        return self._encode("AREA_SHARE", "request",
                            self.generation.area_share(region.id, region.handle, region.pages, attrs.encode()))

    def unshare_frame(self, region) -> bytes:
        return self._encode("AREA_UNSHARE", "request", {"area_id": region.id})

    def release_frame(self, region) -> bytes:
        return self._encode("AREA_RELEASE", "event", {"area_id": region.id})

    def reclaim_region(self, region):
        yield from self._reclaim_area(region.id, region.pages)

    def attach_region(self, region) -> int:
        return self._retrieve(region.id, region.pages)

    def detach_region(self, region) -> int | None:
        return self._relinquish(region.id)
