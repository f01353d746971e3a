"""Virtqueues: the driver's and the device's halves of one split ring in shared bytes.

The ring lives in a bytearray from the simulation's address space; the driver hands its address
to the device in SET_VQUEUE and both sides operate on the same bytes through `vmsim.wire.rings`.
Each side charges the shared-memory cost of the bytes its ring operations touched, and notifies
the other side only when the ring says so (event-index suppression, VIRTIO_F_RING_EVENT_IDX).

Each half is a pair of long-lived processes woken by bare events: the driver's submitter and
reclaimer, the device's worker. A reset stops both halves: the device drops what it holds, the driver
lays its ring out afresh and publishes again what was in flight.
"""

from __future__ import annotations

from collections import deque

from vmsim.sim.costs import FREE_MEMORY, NO_SOFTWARE
from vmsim.sim.receive import Waker
from vmsim.sim.share_mechanism import PAYLOAD_BASE
from vmsim.wire.rings import SplitDevice, SplitDriver, SplitRing, split_ring_layout

RING_ALIGN = 64  # areas on cache-line boundaries (virtio 1.x needs only 16/2/4)


class DriverQueue:
    """The driver's half: publish requests to the avail ring, reclaim them from the used ring."""

    def __init__(self, driver, handle, index: int, size: int, event_idx: bool):
        sim = driver.sim
        self.sim = sim
        self.env = sim.env
        self.handle = handle
        self.bus = handle.bus
        self.dev_num = handle.dev_num
        self.index = index
        self.size = size
        self.event_idx = event_idx
        _desc, avail, used, nbytes = split_ring_layout(size, RING_ALIGN)
        self.address, self._bytes = sim.addresses.allocate(nbytes)
        self.ring = SplitDriver(SplitRing.contiguous(self._bytes, 0, size, RING_ALIGN).init(), event_idx)
        self.addresses = {"desc_addr": self.address, "driver_addr": self.address + avail,
                          "device_addr": self.address + used}
        self.inflight: dict[int, object] = {}
        sim.inflight[self.address] = self.inflight
        self.backlog: deque = deque()
        self.memory = self.bus.driver_memory or FREE_MEMORY
        self.cpu = self.bus.driver_cpu
        self.software = driver.software
        self.copies_payload = driver.copies_payload
        # most drivers neither run an endpoint software path nor copy payload: skip the per-request sums then
        self._endpoint_work = driver.software is not NO_SOFTWARE or driver.copies_payload
        sharer = self.bus.sharers.get(self.dev_num)
        if sharer is not None:
            sharer.queues[index] = self
        # whose request-buffer hooks run around each request: the device's sharing, the bus's mechanism, or none
        mechanism = self.bus.mechanism
        self.buffers = sharer or (mechanism if mechanism.buffer_hooks else None)
        # A sharer's hook may wait for the device's answer, which arrives in the very receive context that
        # runs `reclaim`: then what a reclaim frees is published by the submitter, not by the handler.
        self._publish_in_handler = sharer is None
        self.halted = False  # a reset is under way, or the device is gone (`dropping`): publish nothing
        self.dropping = False
        self._publishing = False  # a running publish loop picks up new requests itself
        self._reclaiming = False  # a running reclaim publishes what it freed when it is done
        self._submit_wake = Waker(self.env)
        self.reclaimed = 0  # buffers come back so far: what the driver's stall watchdog sees progress by
        self.looked = 0  # the time of the handler's last look at used.idx, not paid yet: no step waits on it
        self._idle = None  # the stall watchdog's wake-up while nothing is out (`busy`)
        self.env.process(self._submitter())

    def submit(self, request) -> None:
        """Queue a request; published at once unless this queue's handler is already at work."""
        self.backlog.append(request)
        if not (self._publishing or self._reclaiming):
            self._submit_wake.kick()
        if self._idle is not None:
            self._idle.kick()

    def in_flight(self) -> bool:
        """Buffers are out with the device."""
        return self.ring.num_free < self.size

    def busy(self):
        """Wait until there is work for the device (the stall watchdog sleeps meanwhile, so an idle queue
        schedules nothing)."""
        if not self.in_flight() and not self.backlog:
            self._idle = Waker(self.env)
            yield self._idle.wait()
            self._idle = None

    def kick(self):
        """Notify the device once more, whatever the ring says (the stall watchdog's retry)."""
        if not self.halted:
            yield from self.bus.notify_device(self.dev_num, self.index)

    def _submitter(self):
        """Publishes requests that arrive from outside the driver's handlers (open-loop workloads)."""
        while True:
            yield self._submit_wake.wait()
            self._submit_wake.rearm()
            if not self._publishing:
                yield from self._publish()

    def _publish(self):
        """Add queued requests to the avail ring, pay for the bytes written, kick if the ring says so."""
        if self.halted:
            if self.dropping:
                self.backlog.clear()
            return
        ring = self.ring
        backlog = self.backlog
        inflight = self.inflight
        memory = self.memory
        bus = self.bus
        buffers = self.buffers
        endpoint_work = self._endpoint_work
        self._publishing = True
        try:
            while backlog and ring.num_free and not self.halted:  # a removal taken in while we paid ends the pass
                read, written = ring.bytes_read, ring.bytes_written
                published = []
                while backlog and ring.num_free:
                    request = backlog.popleft()
                    if endpoint_work:
                        published.append(request)
                    address = PAYLOAD_BASE
                    if buffers is not None:
                        address = yield from buffers.share_buffer(self.dev_num, self.index, request)
                        ring = self.ring  # a reset may have laid the ring out afresh while the hook waited
                    head = ring.add(((address, request.size, False),), request)
                    inflight[head] = request  # what the device is serving, for the request log
                kick = ring.kick_needed()
                rings = memory.access(ring.bytes_read - read, ring.bytes_written - written)
                cost = self._charge(rings, published, "to-device")
                if cost:
                    yield from self.cpu.hold(cost)
                if kick and not self.halted:
                    yield from bus.notify_device(self.dev_num, self.index)
        finally:
            self._publishing = False

    def _charge(self, rings: int, requests, direction: str) -> int:
        """The driver's time for one ring update: the ring bytes, and for each request its endpoint software
        and, going `direction`, its payload copy through the shared buffers (into them to the device, out of
        them from it), with the last look's time still owed. Accounted by activity; returns the total to hold
        the driver's core for."""
        cpu = self.cpu
        rings += self.looked
        self.looked = 0
        if not requests:  # no endpoint work: the ring bytes alone
            cpu.by_activity["rings"] += rings
            return rings
        software, memory, copies = self.software, self.memory, self.copies_payload
        own = copied = 0
        for request in requests:
            moved = request.size if request.workload.payload in (direction, "both") else 0
            if direction == "to-device":
                own += software.submit + software.copy(moved)
                copied += memory.copy_in(moved) if copies else 0
            else:
                own += software.complete + software.copy(moved)
                copied += memory.copy_out(moved) if copies else 0
        cpu.by_activity["rings"] += rings
        cpu.by_activity["software"] += own
        cpu.by_activity["copies"] += copied
        return rings + own + copied

    def flush(self):
        """Kick for what this pass added so far if the ring says so: a buffer hook runs it before it waits,
        so that requests already published get served and free what it waits for. A halted queue kicks
        nothing: a reset lays its ring out afresh, a removed device serves nothing."""
        if not self.halted and self.ring.added and self.ring.kick_needed():
            yield from self.bus.notify_device(self.dev_num, self.index)

    def halt(self, drop: bool = False) -> None:
        """Publish nothing more: a reset is under way, or (`drop`) the device is gone and what waits is dropped."""
        self.halted = True
        self.dropping = drop

    def restart(self) -> None:
        """After a reset: lay the ring out afresh; what was in flight is queued again, first, in order."""
        outstanding = sorted(self.ring.outstanding(), key=lambda request: request.request_id)
        self.backlog.extendleft(reversed(outstanding))
        self.ring = SplitDriver(SplitRing.contiguous(self._bytes, 0, self.size, RING_ALIGN).init(), self.event_idx)

    def resume(self) -> None:
        self.halted = False
        self._submit_wake.kick()

    def reclaim(self):
        """The used-buffer handler, run in the driver's receive context (as a virtqueue callback runs in
        the interrupt handler): reclaim used buffers, complete their requests, publish what they freed."""
        env = self.env
        ring = self.ring
        memory = self.memory
        buffers = self.buffers
        endpoint_work = self._endpoint_work
        self._reclaiming = True
        try:
            while ring is self.ring:  # a reset lays out a new ring: the old one holds nothing to reclaim
                read, written = ring.bytes_read, ring.bytes_written
                done = []
                while (used := ring.get_used()) is not None:
                    done.append(used[0])
                if not done:  # the last look found nothing: its time is paid with the driver's next ring step
                    self.looked += memory.access(ring.bytes_read - read, ring.bytes_written - written)
                    break
                self.reclaimed += len(done)
                rings = memory.access(ring.bytes_read - read, ring.bytes_written - written)
                cost = self._charge(rings, done if endpoint_work else (), "from-device")
                if cost:
                    yield from self.cpu.hold(cost, irq=True)
                if buffers is not None:
                    for request in done:
                        yield from buffers.release_buffer(self.dev_num, self.index, request)
                        request.workload.complete(request, env.now)
                else:
                    now = env.now
                    for request in done:
                        request.workload.complete(request, now)
        finally:
            self._reclaiming = False
        if self.backlog and not self._publishing:
            if self._publish_in_handler:
                yield from self._publish()
            else:
                self._submit_wake.kick()


class DeviceQueue:
    """The device's half: pop available buffers, serve them, return them on the used ring."""

    def __init__(self, device, index: int, buffer: bytearray, size: int, event_idx: bool):
        sim = device.sim
        self.device = device
        self.env = sim.env
        self.index = index
        self.ring = SplitDevice(SplitRing.contiguous(buffer, 0, size, RING_ALIGN), event_idx)
        self.inflight = sim.inflight[sim.addresses.address_of(buffer)]
        self.memory = device.bus.device_memory or FREE_MEMORY
        self.cpu = device.bus.device_cpu
        self.shares = device.shares
        self.stopped = False
        self.counts = sim.counter(device.name)
        self.counts.setdefault("served", 0)
        self.counts.setdefault("busy_ns", 0)
        self._wake = Waker(self.env)
        self.env.process(self._worker())

    def kick(self) -> None:
        self._wake.kick()

    def stop(self) -> None:
        self.stopped = True
        self._wake.kick()

    def _own_work(self, request, length: int, direction: str) -> int:
        """The device's own work on a buffer, accounted: taking it (`direction` "to-device": its task woken) or
        replying ("from-device"), the payload going that way copied out of or into the shared buffer and by its
        own software. A buffer no request is known for carries its payload to the device."""
        device, software, memory = self.device, self.device.software, self.memory
        payload = request.workload.payload if request is not None else "to-device"
        moved = length if payload in (direction, "both") else 0
        if direction == "to-device":
            own = software.complete + software.copy(moved)
            copied = memory.copy_out(moved) if device.copy_payload else 0
        else:
            own = software.submit + software.copy(moved)
            copied = memory.copy_in(moved) if device.copy_payload else 0
        self.cpu.by_activity["software"] += own
        self.cpu.by_activity["copies"] += copied
        return own + copied

    def _worker(self):
        env = self.env
        ring = self.ring
        device = self.device
        bus = device.bus
        memory = self.memory
        service = device.service
        endpoint_work = device.software is not NO_SOFTWARE or device.copy_payload  # most devices have none
        hardware = device.hardware_engine
        hold = self.cpu.hold
        by_activity = self.cpu.by_activity
        inflight = self.inflight
        counts = self.counts
        mechanism = bus.mechanism
        hooks = mechanism.buffer_hooks
        shares = self.shares
        before_service = hooks or shares is not None
        owed = 0  # time writing the last used entry, paid with the next step when nothing waits on it
        looked = 0  # the time of the drain's last look (nothing waits on it), paid with the next drain's first pop
        while not self.stopped:
            yield self._wake.wait()
            self._wake.rearm()
            read, written = ring.bytes_read, ring.bytes_written
            ring.set_notify(False)  # no kicks while we drain (as vhost does); its bytes go with the first pop's
            while not self.stopped:
                popped = ring.pop()
                if popped is None:
                    ring.set_notify(True)
                    if ring.pending():
                        ring.set_notify(False)
                        continue  # a buffer arrived while notifications were off: paid with its pop
                    # the empty pop, kicks back on, the look again
                    looked += memory.access(ring.bytes_read - read, ring.bytes_written - written)
                    break
                head, chain = popped
                length = 0
                for _address, nbytes, _flags, _next in chain:  # a loop, not sum() over a generator: no call
                    length += nbytes
                rings = memory.access(ring.bytes_read - read, ring.bytes_written - written) + looked
                by_activity["rings"] += rings
                cost = owed + rings
                owed = looked = 0
                if before_service:
                    if cost:
                        yield from hold(cost)
                        cost = 0
                    if hooks:
                        yield from mechanism.map_buffer(device, self.index, chain)
                    if self.stopped:  # reset while the buffer waited to be mapped: leave it untouched
                        if hooks:
                            yield from mechanism.unmap_buffer(device, self.index, chain)
                        break
                    if shares is not None:
                        shares.access(device, chain)
                request = inflight.get(head)
                if endpoint_work:
                    cost += self._own_work(request, length, "to-device")
                duration = service()
                counts["served"] += 1
                counts["busy_ns"] += duration
                if hardware:  # the core reads the buffer, then the device's own engine serves it
                    if cost:
                        yield from hold(cost)
                    if request is not None:
                        request.start_ns, request.service_ns = env.now, duration
                    if duration:
                        yield env.timeout(duration)
                else:
                    by_activity["service"] += duration
                    if cost + duration:
                        yield from hold(cost + duration)
                    if request is not None:  # service started once the buffer was read, on the same core
                        request.start_ns, request.service_ns = env.now - duration, duration
                reply = self._own_work(request, length, "from-device") if endpoint_work else 0
                if hooks:
                    yield from mechanism.unmap_buffer(device, self.index, chain)
                if shares is not None:
                    yield from shares.done(device, chain)
                if self.stopped:  # reset or removed while serving: the buffer is dropped, no used entry
                    break
                read, written = ring.bytes_read, ring.bytes_written
                ring.push_used(head, length)
                interrupt = ring.interrupt_needed()
                rings = memory.access(ring.bytes_read - read, ring.bytes_written - written)
                read, written = ring.bytes_read, ring.bytes_written
                by_activity["rings"] += rings
                cost = rings + reply
                if not interrupt:
                    owed = cost
                    continue
                if cost:
                    yield from hold(cost)
                if self.stopped:  # reset while writing the used entry: a reset device notifies nothing
                    break
                yield from bus.notify_driver(device.dev_num, self.index)
            if owed:
                yield from hold(owed)
                owed = 0
