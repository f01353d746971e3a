"""Memory shared under a policy, with acknowledgements: one lifecycle on every bus.

A device with `sharing:` gets its buffers from a heap the bus provides. Buffers are carved from
regions (`batch` buffers of one size, whole pages), and a region lives through

    allocated -> share requested -> shared (acknowledged) -> in use
              -> release requested (by the driver, or by the device) -> released (acknowledged) -> reclaimed

`ShareDriver` (driver side, one per device) decides when, under its policy; the bus's sharing mechanism
supplies the steps and the messages (`ShareMechanism.prepare_share` .. `reclaim_region`: bookkeeping in an
AMP carve-out, grants and maps on Xen, FF-A memory calls and AREA_* messages); `DeviceShares` (device side,
one per bus, `vmsim.sim.device_shares`) takes regions in, answers, checks every access and gives regions
back. Regions, their buffers and the heap are in `vmsim.sim.regions`. Each transition is a mark row whose
value is the region's id, on component `<bus>.<device>.share.driver`
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

`unsafe_release: true` shows the design the group moved away from: a release the driver starts reclaims the
region as soon as it asked, without waiting for the device's completion. Nothing in the run breaks visibly;
the checker (`vmsim.analysis.checks`) finds every such reclaim (scenarios/sharing/*-unsafe.yaml).
"""

from __future__ import annotations

from collections import deque

from vmsim.sim.core import Component, Simulation
from vmsim.sim.costs import sampler
from vmsim.sim.device_shares import DeviceShares
from vmsim.sim.regions import Buffer, Heap, Region
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
            "bytes_shared_max", "acks_lost", "acks_delayed", "unsafe_releases"), 0))
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
        yield from bus.mechanism.new_share_id(region, lambda: self._flush(vq))
        bus.regions[region.id] = region
        started = self.env.now
        self._mark("share.request", region)
        yield from bus.mechanism.prepare_share(region)
        for attempt in range(spec.retries + 1):
            if attempt:
                self._mark("share.request", region)
            answer = yield from bus.call(bus.mechanism.share_frame(region), spec.ack_timeout)
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
        if spec.unsafe_release:
            yield from self._release_unwaited(region, started)
            return
        timeouts = busy = 0
        delay = bus.mechanism.busy_backoff
        while True:
            self._mark("release.request", region)
            answer = yield from bus.call(bus.mechanism.unshare_frame(region), spec.ack_timeout)
            if answer is None:
                self._mark("release.timeout", region)
                self.counts["release_timeouts"] += 1
                timeouts += 1
                if timeouts > spec.retries:
                    break
            elif answer["result"] == Result.BUSY:
                self.counts["busy"] += 1
                busy += 1
                if busy >= bus.mechanism.busy_retries:
                    break
                yield self.env.timeout(delay)
                delay = min(2 * delay, bus.mechanism.busy_backoff_max)
            else:  # SUCCESS; or the device no longer knows it (an earlier UNSHARE went through, its ack lost)
                self._mark("release.done", region)
                yield from self._reclaim(region, started)
                return
        region.state = "leaked"
        self.live.pop(region, None)
        self.counts["leaked"] += 1
        self._notify()

    def _release_unwaited(self, region: Region, started: int):
        """`unsafe_release`: ask the device to give the region up and reclaim at once, without its completion
        (the design the group moved away from). The device may still map it, or answer later: the checker
        reports such a reclaim (`release-completes-after-ack`, `no-reclaim-before-relinquish`)."""
        self._mark("release.request", region)
        self.counts["unsafe_releases"] += 1
        self.env.process(self.bus.call(self.bus.mechanism.unshare_frame(region), self.spec.ack_timeout))
        yield from self._reclaim(region, started)

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
        yield from self.bus.mechanism.reclaim_region(region)
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
