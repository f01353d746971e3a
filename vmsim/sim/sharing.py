"""Memory shared under a policy, with acknowledgements: one lifecycle on every bus.

A device with `sharing:` gets its buffers from a heap the bus provides. Buffers are carved from
regions (`batch` buffers of one size, whole pages), and a region lives through

    allocated -> share requested -> shared (acknowledged) -> in use
              -> release requested (by the driver, or by the device) -> released (acknowledged) -> reclaimed

`ShareDriver` (driver side, one per device) decides when, under its policy; the bus supplies the
mechanism and the messages (`Bus.prepare_share` .. `Bus.reclaim_region`: bookkeeping in an AMP
carve-out, grants and maps on Xen, FF-A memory calls and AREA_* messages); `DeviceShares` (device
side, one per bus) takes regions in, answers, checks every access and gives regions back. Each
transition is a mark row whose value is the region's id, on component `<bus>.<device>.share.driver`
or `<bus>.<device>.share.device`:

    driver: share.request, share.done (ack received), share.timeout, release.request,
            release.done (ack, or the device's own release, received), release.timeout, reclaim
    device: share.ack, share.access, release.request (the device gives back), release.ack

so that `vmsim.analysis.checks` can prove from the log alone that no device touched memory it did not
hold and that nothing was left shared.

Policies: `on-first-use` shares a region when a request needs a buffer and none is ready (the share
is on that request's path); `at-allocation` shares regions as they are allocated, one batch ahead
of use; `pool` shares `pool` buffers of the largest size once, when the bus comes up, and keeps them.
`release`: `eager` gives a region back once all its buffers retired; `lazy` keeps it shared
`linger` longer for reuse (heap pressure ends that early); `device` lets the device give each region
back once it consumed every buffer in it (each buffer then carries one request).
"""

from __future__ import annotations

from collections import deque

from vmsim.sim.core import Component, Simulation
from vmsim.sim.costs import sampler
from vmsim.wire.memory import PAGE, pages
from vmsim.wire.share import MemType, Result

MEMORY_TYPES = {"normal": MemType.NORMAL, "non-cacheable": MemType.NON_CACHEABLE, "device": MemType.DEVICE}
DRIVER_EVENTS = ("share.request", "share.done", "share.timeout", "release.request", "release.done",
                 "release.timeout", "reclaim")
DEVICE_EVENTS = ("share.ack", "share.access", "release.request", "release.ack")


def largest_size(size) -> int:
    """The largest value a size distribution draws."""
    if size.dist == "constant":
        return size.value
    if size.dist == "uniform":
        return size.high
    return max(size.values)


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


class ShareDriver(Component):
    """The driver side of one device's sharing: its heap, regions, buffers and policy; the bus's
    request-buffer hooks for that device (`share_buffer` before a request is published, `release_buffer`
    once it came back)."""

    def __init__(self, sim: Simulation, bus, *, device: str, dev_num: int, spec, lives: dict, pool_slot: int):
        super().__init__(sim, f"{bus.name}.{device}.share.driver")
        self.bus = bus
        self.dev_num = dev_num
        self.spec = spec
        self.policy = spec.policy
        self.release = spec.release
        self.mem_type = MEMORY_TYPES[spec.memory_type]
        self.lives = lives  # workload -> (uses, lifetime) of the buffers born for it
        self.pool_slot = pool_slot
        self.heap = Heap(spec.heap)
        self.idle: deque[Buffer] = deque()
        self.lingering: deque[Region] = deque()
        self.live: dict[Region, None] = {}  # allocated, not yet reclaimed (nor leaked), in allocation order
        self.using: dict = {}  # request -> its buffer
        self.queues: dict = {}  # vq -> DriverQueue, kicked before a wait
        self.halted = False  # a reset is under way
        self.stopped = False  # the run is over, or the device was removed: no new buffers
        self._refill = None  # at-allocation: the region being shared ahead of use
        self._changed = sim.env.event()
        self.device_log_id = sim.log.components(f"{bus.name}.{device}.share.device")
        self._ev = {name: sim.log.events(name) for name in DRIVER_EVENTS + DEVICE_EVENTS}
        self._loss = spec.ack_loss
        self._rng = sim.rng(f"{self.name}.faults")
        self._delay = sampler(spec.ack_delay, sim.rng(f"{self.name}.ack_delay"))
        self.shared_bytes = sim.new_series(f"{self.name}.shared_bytes")
        self.counts = sim.counter(self.name)
        self.counts.update(dict.fromkeys((
            "shares", "share_timeouts", "share_failures", "releases", "device_releases", "release_timeouts", "busy",
            "reclaims", "leaked", "heap_waits", "reuses", "bounce_bytes", "share_ns", "reclaim_ns", "bytes_shared",
            "bytes_shared_max", "acks_lost", "acks_delayed"), 0))
        bus.sharers[dev_num] = self
        if bus.shares is None:
            bus.shares = DeviceShares(sim, bus)
        if self.policy == "pool":
            sim.env.process(self._fill_pool())

    # --- the request-buffer hooks ---------------------------------------------------------------------

    def share_buffer(self, dev_num: int, vq: int, request):
        """A shared buffer for `request` (waiting for one if the policy says so); its bus address."""
        buffer = yield from self._acquire(request.size, request.workload, vq)
        buffer.region.in_flight += 1
        self.using[request] = buffer
        if self.spec.bounce:  # the device cannot reach the heap: the data goes through the carve-out
            self.counts["bounce_bytes"] += request.size
            cost = self.bus.driver_memory.write(request.size)
            if cost:
                yield self.env.timeout(cost)
        return buffer.address

    def release_buffer(self, dev_num: int, vq: int, request):
        """The request came back: its buffer goes back to the idle list, or retires."""
        buffer = self.using.pop(request, None)
        if buffer is not None:
            self._used(buffer)
        return
        yield

    # --- getting a buffer -------------------------------------------------------------------------------

    def _acquire(self, size: int, workload, vq: int):
        while True:
            if self.halted or self.stopped:  # kick what this pass published first: at the end of the run the
                yield from self._wait(vq)  # device still serves it, and teardown waits for its buffers
                continue
            buffer = self._take_idle(size)
            if buffer is not None:
                if self.policy == "at-allocation" and not self.idle and self._refill is None:
                    self._refill = self.env.process(self._ahead(size, workload, vq))
                return buffer
            lingering = next((region for region in reversed(self.lingering) if region.slot >= size), None)
            if lingering is not None:
                self._revive(lingering, workload)
            elif self.policy == "pool" or self._refill is not None:
                yield from self._wait(vq)
            elif self.policy == "at-allocation":
                self._refill = self.env.process(self._ahead(size, workload, vq))
            else:
                yield from self._provide(size, self.spec.batch, self.lives.get(workload), vq)

    def _take_idle(self, size: int) -> Buffer | None:
        """The oldest idle buffer big enough; idle buffers past their lifetime retire on the way."""
        now = self.env.now
        for buffer in list(self.idle):
            if buffer.expires is not None and now >= buffer.expires:
                self.idle.remove(buffer)
                self._retire(buffer.region)
            elif buffer.size >= size:
                self.idle.remove(buffer)
                return buffer
        return None

    def _ahead(self, size: int, workload, vq: int):
        """at-allocation: share the next region before a request needs it."""
        yield from self._provide(size, self.spec.batch, self.lives.get(workload), vq)
        self._refill = None
        self._notify()

    def _fill_pool(self):
        """pool: `pool` buffers of the largest size, shared in regions of `batch`, kept until the end."""
        left = self.spec.pool
        while left and not self.stopped:
            count = min(left, self.spec.batch)
            yield from self._provide(self.pool_slot, count, None, None)
            left -= count

    def _provide(self, slot: int, count: int, life, vq):
        """Allocate a region of `count` buffers of `slot` bytes and share it; its buffers become idle.

        A full heap first gives back lingering regions (heap pressure), then waits for a reclaim.
        """
        needed = pages(slot * count)
        while (offset := self.heap.take(needed)) is None:
            if self.lingering:
                self._give_back_now(self.lingering.popleft())
            self.counts["heap_waits"] += 1
            yield from self._wait(vq)
            if self.halted or self.stopped:
                return
        region = Region(self, offset, slot, count)
        self.live[region] = None
        if (yield from self._share(region, vq)):
            uses, lifetime = life or (None, None)
            expires = None if lifetime is None else self.env.now + lifetime
            base = region.bus_address
            region.buffers = [Buffer(region, base + i * slot, uses, expires) for i in range(count)]
            self.idle.extend(region.buffers)
        self._notify()

    def _wait(self, vq):
        """Wait for something to change (a buffer back, a reclaim, a share done)."""
        yield from self._flush(vq)
        yield self._changed

    def _flush(self, vq):
        """Kick what the queue `vq` already published in this pass before waiting: those requests are what
        frees the next buffer (or FF-A area id)."""
        queue = self.queues.get(vq)
        if queue is not None:
            yield from queue.flush()

    def _notify(self) -> None:
        self._changed.succeed()
        self._changed = self.env.event()

    # --- sharing ------------------------------------------------------------------------------------

    def _share(self, region: Region, vq):
        """Make the region reachable and ask the device to take it; retried when the ack does not come within
        `ack_timeout`. True once acknowledged; a region never acknowledged is given back (the device may
        have taken it and lost only the answer)."""
        bus, spec = self.bus, self.spec
        region.state = "sharing"
        yield from bus.new_share_id(region, lambda: self._flush(vq))
        bus.regions[region.id] = region
        started = self.env.now
        self._mark("share.request", region)
        yield from bus.prepare_share(region)
        for attempt in range(spec.retries + 1):
            if attempt:
                self._mark("share.request", region)
            answer = yield from bus.call(bus.share_frame(region), spec.ack_timeout)
            if answer is None:
                self._mark("share.timeout", region)
                self.counts["share_timeouts"] += 1
                continue
            if answer["result"] == Result.SUCCESS:
                self._mark("share.done", region)
                region.state = "shared"
                region.acked = True
                self.counts["shares"] += 1
                self.counts["share_ns"] += self.env.now - started
                self._shared_bytes(region.pages * PAGE)
                return True
            break
        self.counts["share_failures"] += 1
        yield from self._give_back(region)
        return False

    # --- giving back ----------------------------------------------------------------------------------

    def _used(self, buffer: Buffer) -> None:
        region = buffer.region
        region.in_flight -= 1
        if region.state != "shared":  # on its way back: its release waits for the last request
            self._notify()
            return
        if buffer.uses is not None:
            buffer.uses -= 1
        alive = buffer.uses is None or buffer.uses > 0
        if alive and (buffer.expires is None or self.env.now < buffer.expires):
            self.idle.append(buffer)
            self._notify()
        else:
            self._retire(region)

    def _retire(self, region: Region) -> None:
        """One more buffer of `region` is done; the last one ends its use under the release policy."""
        region.retired += 1
        if region.retired < region.count or self.release == "device":
            return  # with `release: device` the device gives the region back itself
        if self.release == "lazy":
            region.state = "lingering"
            region.epoch += 1
            self.lingering.append(region)
            self.env.process(self._linger(region, region.epoch))
            self._notify()  # an allocation waiting for heap space may take it back now
        else:
            self._give_back_now(region)

    def _linger(self, region: Region, epoch: int):
        yield self.env.timeout(self.spec.linger)
        if region.state == "lingering" and region.epoch == epoch:
            self.lingering.remove(region)
            yield from self._give_back(region)

    def _revive(self, region: Region, workload) -> None:
        """lazy: a lingering region is still shared, so new buffers live in it without another share."""
        self.lingering.remove(region)
        region.state = "shared"
        region.retired = 0
        uses, lifetime = self.lives.get(workload) or (None, None)
        expires = None if lifetime is None else self.env.now + lifetime
        for buffer in region.buffers:
            buffer.uses, buffer.expires = uses, expires
        self.idle.extend(region.buffers)
        self.counts["reuses"] += 1

    def _give_back_now(self, region: Region) -> None:
        region.state = "releasing"  # at once, so that nothing takes it meanwhile
        self.env.process(self._give_back(region))

    def _give_back(self, region: Region):
        """A release the driver starts: once the region's last request is back, ask the device to give it
        up and reclaim only on its acknowledgement. No answer within `ack_timeout` is asked again
        (`retries` times); BUSY (the device still maps it) is asked again after the bus's backoff. A
        region the device never confirms is never reclaimed: it is counted as leaked."""
        bus, spec = self.bus, self.spec
        region.state = "releasing"
        self._forget_idle(region)
        while region.in_flight:
            yield self._changed
        started = self.env.now
        self.counts["releases"] += 1
        timeouts = busy = 0
        delay = bus.busy_backoff
        while True:
            self._mark("release.request", region)
            answer = yield from bus.call(bus.unshare_frame(region), spec.ack_timeout)
            if answer is None:
                self._mark("release.timeout", region)
                self.counts["release_timeouts"] += 1
                timeouts += 1
                if timeouts > spec.retries:
                    break
            elif answer["result"] == Result.BUSY:
                self.counts["busy"] += 1
                busy += 1
                if busy >= bus.busy_retries:
                    break
                yield self.env.timeout(delay)
                delay = min(2 * delay, bus.busy_backoff_max)
            else:  # SUCCESS; or the device no longer knows it (an earlier UNSHARE went through, its ack lost)
                self._mark("release.done", region)
                yield from self._reclaim(region, started)
                return
        region.state = "leaked"
        self.live.pop(region, None)
        self.counts["leaked"] += 1
        self._notify()

    def on_release(self, region: Region) -> None:
        """The device gave `region` back itself (its release event arrived): reclaim it once its last
        request is back. If the driver is giving it back already, its own release completes the story."""
        if region.state not in ("shared", "lingering"):
            return
        self._mark("release.done", region)
        region.state = "released"
        self.counts["device_releases"] += 1
        self._forget_idle(region)
        self.env.process(self._reclaim_released(region))

    def _reclaim_released(self, region: Region):
        started = self.env.now
        while region.in_flight:
            yield self._changed
        yield from self._reclaim(region, started)

    def _reclaim(self, region: Region, started: int):
        yield from self.bus.reclaim_region(region)
        self._mark("reclaim", region)
        region.state = "reclaimed"
        self.live.pop(region, None)
        del self.bus.regions[region.id]
        self.heap.give(region.offset, region.pages)
        self.counts["reclaims"] += 1
        self.counts["reclaim_ns"] += self.env.now - started
        if region.acked:
            self._shared_bytes(-region.pages * PAGE)
        self._notify()

    def _forget_idle(self, region: Region) -> None:
        if any(buffer.region is region for buffer in self.idle):
            self.idle = deque(buffer for buffer in self.idle if buffer.region is not region)
        if region in self.lingering:
            self.lingering.remove(region)

    # --- resets, removal, the end of the run ------------------------------------------------------------

    def reset(self):
        """The driver reset the device: what was in flight is dropped (its queues requeue it) and every region
        is given back, acknowledged, before the device is set up again (`resume`)."""
        self.halted = True
        yield from self._give_all()

    def resume(self) -> None:
        self.halted = False
        self._notify()

    def device_gone(self) -> None:
        """The device was removed: nothing it held will come back on its own; give every region back."""
        self.stopped = True
        self.env.process(self._give_all())

    def teardown(self):
        """At the end of the run: no new buffers; every region given back once its requests are done."""
        self.stopped = True
        yield from self._give_all()

    def _give_all(self):
        if self.halted or self.stopped and not self._serving():
            for buffer in self.using.values():  # abandoned with the device's queues
                buffer.region.in_flight -= 1
            self.using.clear()
        self.idle.clear()
        while self.live:  # one region at a time, as a driver tearing down does; others finish their way
            region = next((region for region in self.live if region.state in ("shared", "lingering")), None)
            if region is None:
                yield self._changed
            else:
                self._forget_idle(region)
                yield from self._give_back(region)

    def _serving(self) -> bool:
        """Whether the device still serves the requests in flight (the run ended; it was not removed)."""
        return self.dev_num in self.bus.devices

    # --- bookkeeping ------------------------------------------------------------------------------------

    def _mark(self, event: str, region: Region) -> None:
        self.sim.log.mark(self.env.now, self.log_id, self._ev[event], self.bus.bus_id, self.dev_num, region.id)

    def device_mark(self, event: str, region: Region) -> None:
        self.sim.log.mark(self.env.now, self.device_log_id, self._ev[event], self.bus.bus_id, self.dev_num,
                          region.id)

    def _shared_bytes(self, change: int) -> None:
        counts = self.counts
        counts["bytes_shared"] += change
        counts["bytes_shared_max"] = max(counts["bytes_shared_max"], counts["bytes_shared"])
        self.shared_bytes.record(self.env.now, counts["bytes_shared"])

    def ack_fault(self) -> tuple[bool, int]:
        """(lost, delay): the scenario's faults on the device's acknowledgement of one of these regions."""
        lost = bool(self._loss) and self._rng.random() < self._loss
        delay = self._delay()
        self.counts["acks_lost"] += lost
        self.counts["acks_delayed"] += delay > 0
        return lost, delay


class DeviceShares(Component):
    """The device side of sharing on one bus: the regions it holds, found by page from any bus address.

    It takes a region in on a share request (the bus maps or retrieves it), answers again when a
    retried request finds it held, refuses to give it up while an access is under way (BUSY), and
    with `release: device` gives a region back itself once every buffer in it was consumed. A
    correct device touches only what it holds: an access to anything else is refused (counted).
    """

    def __init__(self, sim: Simulation, bus):
        super().__init__(sim, f"{bus.name}.share.device")
        self.bus = bus
        self.held: dict[int, list] = {}  # region id -> [region, accesses under way, buffers consumed]
        self.pages: dict[int, int] = {}  # bus address >> 12 -> region id
        self.counts = sim.counter(self.name)
        self.counts.update(refused=0)

    def share(self, region_id: int) -> Result | None:
        """A share request: take the region in (once: a request retried after a lost ack finds it held) and
        log share.ack; SUCCESS, ERROR for a region the driver does not know, None when the ack is lost."""
        bus = self.bus
        region = bus.regions.get(region_id)
        if region is None:
            return Result.ERROR
        if region_id not in self.held:
            bus.owe(bus.attach_region(region))
            self.held[region_id] = [region, 0, 0]
            first = region.bus_address >> 12
            for page in range(first, first + region.pages):
                self.pages[page] = region_id
        region.owner.device_mark("share.ack", region)
        return Result.SUCCESS if self._ack_leaves(region) else None

    def unshare(self, region_id: int) -> Result | None:
        """An unshare request: SUCCESS once the region is given up (or was already, or is gone), BUSY while it
        is in use; None when the ack is lost."""
        bus = self.bus
        entry = self.held.get(region_id)
        if entry is None:
            return Result.SUCCESS
        region = entry[0]
        if entry[1] or (spent := bus.detach_region(region)) is None:
            result = Result.BUSY
        else:
            bus.owe(spent)
            self._drop(region)
            result = Result.SUCCESS
        return result if self._ack_leaves(region) else None

    def _ack_leaves(self, region: Region) -> bool:
        lost, late = region.owner.ack_fault()
        self.bus.delay_answer(late)
        return not lost

    def _drop(self, region: Region) -> None:
        del self.held[region.id]
        first = region.bus_address >> 12
        for page in range(first, first + region.pages):
            del self.pages[page]
        region.owner.device_mark("release.ack", region)

    def access(self, device, chain) -> None:
        """The device is about to touch the buffers of `chain`: each must lie in a region it holds."""
        for descriptor in chain:
            region_id = self.pages.get(descriptor[0] >> 12)
            if region_id is None:
                self.counts["refused"] += 1
                continue
            entry = self.held[region_id]
            entry[1] += 1
            entry[0].owner.device_mark("share.access", entry[0])

    def done(self, device, chain):
        """The device is done with `chain`; with `release: device` a region it consumed whole goes back."""
        for descriptor in chain:
            entry = self.held.get(self.pages.get(descriptor[0] >> 12, -1))
            if entry is None:
                continue
            entry[1] -= 1
            entry[2] += 1
            region = entry[0]
            if region.owner.release == "device" and entry[2] >= region.count and not entry[1]:
                yield from self._release(region)

    def _release(self, region: Region):
        """The device gives `region` back on its own: give it up, then tell the driver (SHM_RELEASE or
        AREA_RELEASE)."""
        bus = self.bus
        region.owner.device_mark("release.request", region)
        spent = bus.detach_region(region)
        if spent:
            yield from bus.device_work(spent)
        self._drop(region)
        yield from bus.event_to_driver(region.dev_num, bus.release_frame(region))
