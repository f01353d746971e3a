"""The FF-A bus's sharing mechanism: FFA_MEM_SHARE/LEND, RETRIEVE, RELINQUISH and RECLAIM with the AREA_*
messages, for the pool, per-buffer sharing and regions shared under a policy (`vmsim.sim.sharing`)."""

from __future__ import annotations

from collections import deque

from vmsim.buses.ffa.partition import Side
from vmsim.sim.share_mechanism import ShareMechanism
from vmsim.wire.ffa import (
    Cacheability,
    MemoryType,
    Result,
    SharingAttrs,
    SharingType,
    bus_address,
    split_bus_address,
)
from vmsim.wire.memory import pages
from vmsim.wire.share import MemType


class FfaMemory(ShareMechanism):
    """The FF-A bus's sharing mechanism: the memory calls, the driver's area ids and the partition's area
    table; the pool, per-buffer sharing (the request-buffer hooks) and regions shared under a policy."""

    buffer_hooks = True  # a served buffer holds a partition vCPU; per-buffer sharing shares it
    answers = frozenset(("AREA_SHARE", "AREA_UNSHARE"))

    def __init__(self, bus):
        super().__init__(bus)
        spec = bus.spec
        self._share_type = SharingType.LEND if spec.share_op == "lend" else SharingType.SHARE
        self._attrs = SharingAttrs(type=self._share_type).encode()
        self.busy_retries, self.busy_backoff, self.busy_backoff_max = (spec.mem_retries, spec.mem_backoff,
                                                                       spec.mem_backoff_max)
        # driver side
        self._free_areas: deque = deque()
        self._areas_changed = bus.env.event()
        self._driver_areas: dict[int, int] = {}  # area id -> pages
        self._buffer_area: dict = {}  # request -> area id
        self._released: set[int] = set()
        self._pool = None
        self._handles = 0
        # device side
        self._areas: dict[int, list[int]] = {}  # area id -> [pages, mappings]

    def open_areas(self, count: int) -> None:
        """The partition's VERSION answer says how many area ids there are: 1..count are free."""
        self._free_areas.extend(range(1, count + 1))
        self._area_event()  # regions shared under a policy may already wait for an area id

    def share_pool(self, pages: int):
        """`sharing: probe`: one area shared at start-up that every request buffer lies in."""
        self._pool = yield from self._share_area(pages)

    def answer(self, frame) -> bytes | None:
        """AREA_SHARE / AREA_UNSHARE at the partition (a region shared under a policy is its device side's)."""
        bus, fields = self.bus, frame.fields
        area, share = fields["area_id"], frame.name == "AREA_SHARE"
        if area in bus.regions:  # a region of a device with `sharing:`: its device side answers
            result = (bus.shares.share if share else bus.shares.unshare)(area)
            if result is None:
                return None  # the acknowledgement is lost (a fault the scenario asked for)
        elif share:
            bus.owe(self._retrieve(area, fields[bus.generation.page_count]))
            result = Result.SUCCESS
        else:
            result = self._unshare(area)
        return bus.encode(frame.name, "response", {"area_id": area, "result": result}, token=frame.token)

    def _unshare(self, area_id: int) -> Result:
        """AREA_UNSHARE at the partition: BUSY while a buffer in the area is still mapped (O-new),
        else FFA_MEM_RELINQUISH."""
        if area_id not in self._areas:
            return Result.ERROR
        spent = self._relinquish(area_id)
        if spent is None:
            return Result.BUSY
        self.bus.owe(spent)
        return Result.SUCCESS

    def _retrieve(self, area_id: int, pages: int) -> int:
        """FFA_MEM_RETRIEVE_REQ at the partition: the area joins its table; the call's time."""
        self._areas[area_id] = [pages, 0]
        return self._memory_call(self.bus.device_side, "ffa.mem_retrieve_req", self.bus.costs.mem_retrieve, pages)

    def _relinquish(self, area_id: int) -> int | None:
        """FFA_MEM_RELINQUISH at the partition, and the area leaves its table; the call's time, or None while a
        buffer in the area is still mapped."""
        pages, mapped = self._areas[area_id]
        if mapped:
            return None
        del self._areas[area_id]
        return self._memory_call(self.bus.device_side, "ffa.mem_relinquish", self.bus.costs.mem_relinquish, pages,
                                 self.bus.costs.tlb_maintenance)

    def owe_call(self, event: str, op, pages: int, extra: int = 0) -> None:
        """A partition-side FF-A memory call made while answering: logged now, its time paid before the answer."""
        self.bus.owe(self._memory_call(self.bus.device_side, event, op, pages, extra))

    def _memory_call(self, side: Side, event: str, op, pages: int, extra: int = 0) -> int:
        """Log an FF-A memory call and return its time: the crossing, fixed + per page, TLB maintenance."""
        self.bus.mark(side.component, event, -1, pages)
        return side.call + op.fixed + pages * op.per_page + extra

    # --- memory: the driver side ---------------------------------------------------------------------

    def _mem_call(self, event: str, op, pages: int, extra: int = 0):
        """The driver's FF-A memory call: its core is held for the whole call, the framework's work included."""
        driver = self.bus.driver_side
        yield from driver.work("calls", self._memory_call(driver, event, op, pages, extra))

    def mem_share(self, pages: int, lend: bool = False):
        """FFA_MEM_SHARE (or LEND, which also takes the pages out of the owner's stage 2): a handle."""
        yield from self._mem_call("ffa.mem_lend" if lend else "ffa.mem_share", self.bus.costs.mem_share, pages,
                                  self.bus.costs.tlb_maintenance if lend else 0)
        self._handles += 1
        self.bus.counts["shares"] += 1
        return self._handles

    def _share_area(self, pages: int, kick=None):
        """FFA_MEM_SHARE (or LEND), then AREA_SHARE under a free area id; the partition retrieves the pages.

        With every id taken, `kick` (dev_num, vq) is notified first, so that buffers published before
        this one get served and give their areas back (as a driver kicks before it waits for DMA space).
        """
        handle = yield from self.mem_share(pages, self.bus.spec.share_op == "lend")
        area = yield from self._take_area(None if kick is None else (lambda: self.bus.notify_device(*kick)))
        yield from self.bus.bus_call("AREA_SHARE", self.bus.generation.area_share(area, handle, pages, self._attrs))
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
        if self.bus.spec.release == "device":
            while area not in self._released:
                yield self._areas_changed
            self._released.discard(area)
        else:
            delay = self.bus.spec.mem_backoff
            for attempt in range(1, self.bus.spec.mem_retries + 1):
                result = (yield from self.bus.bus_call("AREA_UNSHARE", {"area_id": area}))["result"]
                if result != Result.BUSY:
                    break
                self.bus.counts["mem_busy"] += 1
                self.bus.mark(self.bus.driver_side.component, "ffa.busy", -1, attempt)
                if attempt < self.bus.spec.mem_retries:
                    yield self.bus.env.timeout(delay)
                    delay = min(2 * delay, self.bus.spec.mem_backoff_max)
            if result != Result.SUCCESS:
                return  # still shared: the area and its pages stay lost to the driver, as in L-26
        yield from self._reclaim_area(area, self._driver_areas.pop(area))

    def _reclaim_area(self, area: int, pages: int):
        """FFA_MEM_RECLAIM: the pages are the driver's again and the area id is free."""
        yield from self._mem_call("ffa.mem_reclaim", self.bus.costs.mem_reclaim, pages)
        self.bus.counts["reclaims"] += 1
        self._free_areas.append(area)
        self._area_event()

    def _area_event(self) -> None:
        self._areas_changed.succeed()
        self._areas_changed = self.bus.env.event()

    def bus_event(self, frame) -> bool:
        """AREA_RELEASE: the partition gave an area back itself (a region's, or a request buffer's)."""
        if frame.name != "AREA_RELEASE":
            return False
        if frame["area_id"] in self.bus.regions:
            region = self.bus.regions[frame["area_id"]]
            region.owner.on_release(region)
        else:
            self._released.add(frame["area_id"])
            self._area_event()
        return True

    # --- request buffers -------------------------------------------------------------------------------

    def share_buffer(self, dev_num: int, vq: int, request):
        if self._pool is not None:
            return bus_address(self._pool, 0, self.bus.area_shift)
        area = yield from self._share_area(pages(request.size), (dev_num, vq))
        self._buffer_area[request] = area
        return bus_address(area, 0, self.bus.area_shift)

    def release_buffer(self, dev_num: int, vq: int, request):
        area = self._buffer_area.pop(request, None)
        if area is not None:
            yield from self._unshare_area(area)

    def map_buffer(self, device, vq: int, chain):
        """The partition serves the buffer on one of its vCPUs; the device translates its bus addresses."""
        yield from self.bus.partition.vcpus.enter()
        for descriptor in chain:
            area = self._areas.get(split_bus_address(descriptor[0], self.bus.area_shift)[0])
            if area is None:
                self.bus.counts["unmapped_access"] += 1
            else:
                area[1] += 1

    def unmap_buffer(self, device, vq: int, chain):
        self.bus.partition.vcpus.leave()
        for descriptor in chain:
            area_id = split_bus_address(descriptor[0], self.bus.area_shift)[0]
            if area_id not in self._areas:
                continue
            if self.bus.spec.unmap_delay:
                self.bus.env.process(self._unmap(area_id, self.bus.spec.unmap_delay))
            else:
                yield from self._unmap(area_id, 0)

    def _unmap(self, area_id: int, delay: int):
        """Drop one mapping (`delay` later: a lazy unmap). With `release: device` the partition then
        relinquishes the area itself and tells the driver with AREA_RELEASE."""
        if delay:
            yield self.bus.env.timeout(delay)
        area = self._areas[area_id]
        area[1] -= 1
        if self.bus.spec.release == "device" and not area[1]:
            yield self.bus.env.timeout(self._relinquish(area_id))
            yield from self.bus.event_to_driver(0, self.bus.encode("AREA_RELEASE", "event", {"area_id": area_id}))

    # --- memory shared under a policy: the FF-A mechanism -------------------------------------------------

    def new_share_id(self, region, before_wait):
        """A free area id of the partition's table."""
        region.id = yield from self._take_area(before_wait)

    def prepare_share(self, region):
        """FFA_MEM_SHARE (or LEND) of the region's pages: its memory handle; bus addresses in its area."""
        region.handle = yield from self.mem_share(region.pages, self.bus.spec.share_op == "lend")
        region.bus_address = bus_address(region.id, 0, self.bus.area_shift)

    def share_frame(self, region) -> bytes:
        """AREA_SHARE, its sharing attributes saying how the device maps the region."""
        kind = region.owner.mem_type
        attrs = SharingAttrs(type=self._share_type,
                             cacheability=Cacheability.NON if kind == MemType.NON_CACHEABLE else Cacheability.WRITE_BACK,
                             memory_type=MemoryType.DEVICE if kind == MemType.DEVICE else MemoryType.NORMAL)
        return self.bus.encode("AREA_SHARE", "request",
                            self.bus.generation.area_share(region.id, region.handle, region.pages, attrs.encode()))

    def unshare_frame(self, region) -> bytes:
        return self.bus.encode("AREA_UNSHARE", "request", {"area_id": region.id})

    def release_frame(self, region) -> bytes:
        return self.bus.encode("AREA_RELEASE", "event", {"area_id": region.id})

    def reclaim_region(self, region):
        yield from self._reclaim_area(region.id, region.pages)

    def attach_region(self, region) -> int:
        return self._retrieve(region.id, region.pages)

    def detach_region(self, region) -> int | None:
        return self._relinquish(region.id)
