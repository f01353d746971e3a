"""The virtio-msg driver (transport, driver side): discovery, initialisation, I/O.

Written once for every bus. It discovers devices with the bus message GET_DEVICES (or takes the
platform's list), initialises each one with real frames in the order the virtio and virtio-msg
specs require, and then moves I/O through split virtqueues whose rings live in real bytes.

Through a device's life it also follows what the scenario gives: configuration changes (read again until
the generation is stable) and its own writes (SET_CONFIG), device resets and virtqueue resets (RESET_VQUEUE,
with ring reset negotiated), a device asking to be reset (DEVICE_NEEDS_RESET), hot-plug and removal. Under a
`timeouts` policy every wait on the peer ends: a request is sent again, then the device is reset and
initialised again, then given up on with FAILED; a `keepalive` PINGs each bus and treats a silent one the
same way. Without them (the default) the driver waits as long as it takes, as before.
"""

from __future__ import annotations

from vmsim.sim.core import Component, Simulation, SimulationError
from vmsim.sim.costs import NO_SOFTWARE, SoftwareCost
from vmsim.sim.virtqueue import DriverQueue
from vmsim.wire.virtio import (
    ACKNOWLEDGE,
    DEVICE_IDS,
    DEVICE_NEEDS_RESET,
    DRIVER,
    DRIVER_OK,
    F_RING_EVENT_IDX,
    F_RING_RESET,
    F_VERSION_1,
    FAILED,
    FEATURES_OK,
)

GET_DEVICES_WINDOW = 32  # device numbers asked per GET_DEVICES (VMA_MAX_DEVS in L-amp26)
CONFIG_RESPONSE_OVERHEAD = 12  # generation, offset, length before data[] in GET_CONFIG's response
SHM_IDS = {DEVICE_IDS["fs"]: (0,)}
"""The shared memory regions a device type's driver asks for with GET_SHM: virtio-fs its DAX window, id 0
(VIRTIO_FS_SHMCAP_ID_CACHE, virtio 1.2 §5.11.5)."""


class PeerSilent(Exception):
    """No answer came within the driver's `timeouts`, after every retry: the flow that asked ends, and the
    driver recovers the device (reset) or gives up on it (FAILED)."""


class DeviceGone(Exception):
    """The device was removed (EVENT_DEVICE) while a flow was talking to it: the flow ends, and nothing more is
    sent to it."""


class DeviceHandle:
    """What the driver knows about one device: its info, negotiated features, config and queues."""

    __slots__ = ("announced", "bus", "config", "dev_num", "failed", "features", "generation", "info", "queues",
                 "ready", "recoveries", "rereading", "resetting", "shm", "status")

    def __init__(self, bus, dev_num: int, ready):
        self.bus = bus
        self.dev_num = dev_num
        self.info: dict = {}
        self.features = 0
        self.config = b""
        self.generation = 0
        self.queues: dict[int, DriverQueue] = {}
        self.ready = ready
        self.failed = ""  # why the driver gave up on it, once it has
        self.announced = 0  # the newest generation an EVENT_CONFIG gave
        self.rereading = False  # a read of the config after EVENT_CONFIG is under way
        self.resetting = False  # a reset and re-initialisation is under way
        self.recoveries = 0  # resets made to recover it (timeouts, keepalive, stalled queues)
        self.status = 0  # the status the driver last wrote
        self.shm: dict[int, tuple[int, int]] = {}  # region id -> (address, length), from GET_SHM


class Driver(Component):
    """One driver instance; a bus belongs to exactly one driver, a driver may own several buses."""

    SUPPORTED_FEATURES = 1 << F_VERSION_1 | 1 << F_RING_EVENT_IDX | 1 << F_RING_RESET

    def __init__(self, sim: Simulation, name: str, *, discovery: str, software: SoftwareCost = NO_SOFTWARE,
                 copies_payload: bool = False, timeouts=None, keepalive=None):
        super().__init__(sim, name)
        self.discovery = discovery
        self.timeouts = timeouts  # the scenario's `timeouts` (response, retries, resets, queue_stall) or None
        self.keepalive = keepalive  # its `keepalive` (period, timeout, misses, outcome) or None
        self.software = software  # its endpoint's own software per request (a user-space application's syscalls)
        self.copies_payload = copies_payload  # it copies payload into and out of the shared buffers
        self.buses: list = []
        self.handles: dict[tuple[str, int], DeviceHandle] = {}
        self.counts = sim.counter(name)
        self.counts.update(devices_ready=0, devices_failed=0, resets=0)

    def attach_bus(self, bus) -> None:
        self.buses.append(bus)
        bus.attach_driver(self)

    def handle(self, bus, dev_num: int) -> DeviceHandle:
        """The handle of a device, created on first use so that workloads can wait on `ready`."""
        key = (bus.name, dev_num)
        found = self.handles.get(key)
        if found is None:
            found = self.handles[key] = DeviceHandle(bus, dev_num, self.env.event())
        return found

    def start(self) -> None:
        for bus in self.buses:
            self.env.process(self._probe(bus))

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # --- discovery and initialisation ------------------------------------------------------------

    def _probe(self, bus):
        if self.discovery == "platform":
            numbers = [n for n, d in sorted(bus.devices.items()) if not d.added_at]
        else:
            numbers = []
            offset = 0
            count = bus.get_devices_count or GET_DEVICES_WINDOW
            started = getattr(bus, "ready", None)  # a plug-in with a start-up of its own (handshake, FF-A VERSION)
            if self.timeouts is not None and started is not None and not started.triggered:
                yield started  # the bus brings itself up first: the response timeout runs from then
            while True:
                frame = bus.layout.encode("GET_DEVICES", "request", {"offset": offset, "count": count})
                response = yield from self._bus_request(bus, frame)
                if response is None:
                    self._count("buses_silent")  # nothing found: no device to initialise, nothing to give up on
                    return
                bitmap = response.fields["bitmap"]
                numbers += [offset + bit for bit in range(len(bitmap) * 8) if bitmap[bit // 8] >> (bit % 8) & 1]
                offset = response.fields["next_offset"]
                if not offset:
                    break
        for dev_num in numbers:
            self.env.process(self._guarded(self.handle(bus, dev_num), self._initialise(bus, dev_num)))
        if self.keepalive is not None:
            self.env.process(self._keepalive(bus))

    def _bus_request(self, bus, frame: bytes):
        """A bus request and its answer; under `timeouts`, sent `retries` more times, then None."""
        policy = self.timeouts
        if policy is None:
            return (yield bus.request(0, frame, bus_message=True))
        for attempt in range(policy.retries + 1):
            if attempt:
                self._count("retries")
            answer = yield from bus.call(frame, policy.response)
            if answer is not None and answer.name == "GET_DEVICES":
                return answer
            self._count("timeouts")
        return None

    def on_device_event(self, bus, dev_num: int, state: int) -> None:
        """EVENT_DEVICE: a device was added (initialise it) or removed (forget it: its queues publish
        nothing more, and the regions it was sharing are given back)."""
        if state & 0x2:
            handle = self.handles.pop((bus.name, dev_num), None)
            for queue in handle.queues.values() if handle is not None else ():
                queue.halt(drop=True)
            sharer = bus.sharers.get(dev_num)
            if sharer is not None:
                sharer.device_gone()
        elif state & 0x1:
            self.env.process(self._guarded(self.handle(bus, dev_num), self._initialise(bus, dev_num)))

    def _ask(self, handle: DeviceHandle, name: str, fields: dict):
        """A transport request to the device and its answer (`answer = yield from self._ask(...)`). Under
        `timeouts` each wait ends after `response` and the request is sent again `retries` times; then
        `PeerSilent` ends the flow that asked, and `_guarded` recovers the device."""
        bus = handle.bus
        key = (bus.name, handle.dev_num)
        if self.handles.get(key) is not handle:
            raise DeviceGone
        frame = bus.layout.encode(name, "request", fields, dev_num=handle.dev_num)
        policy = self.timeouts
        if policy is None:
            return (yield bus.request(handle.dev_num, frame))
        for attempt in range(policy.retries + 1):
            if attempt:
                if self.handles.get(key) is not handle:
                    raise DeviceGone
                self._count("retries")
            answer = yield from bus.call(frame, policy.response, bus_message=False)
            if answer is not None and answer.name == name:  # a layout without tokens may pair a late answer
                return answer
            self._count("timeouts")
        raise PeerSilent(f"{name} to {bus.name} dev {handle.dev_num}: no answer after {policy.retries + 1} tries")

    def _set_status(self, handle: DeviceHandle, status: int):
        handle.status = status
        return (yield from self._ask(handle, "SET_DEVICE_STATUS", {"status": status}))

    def _initialise(self, bus, dev_num: int, reset: bool = True, handle: DeviceHandle | None = None):
        """virtio 1.x §3.1.1 over virtio-msg: GET_DEVICE_INFO (the one message an inactive device takes),
        reset (status 0) unless the caller has just reset it, ACKNOWLEDGE, then DRIVER, each its own write;
        features, FEATURES_OK, then the status read back with GET_DEVICE_STATUS to see that FEATURES_OK
        stayed set (step 6); config, GET_VQUEUE then SET_VQUEUE per queue, the shared memory regions its
        type's driver uses (GET_SHM), DRIVER_OK. `handle`: the device's, when initialising it again."""
        handle = handle or self.handle(bus, dev_num)
        ask = self._ask
        info = (yield from ask(handle, "GET_DEVICE_INFO", {})).fields
        handle.info = info
        if reset:
            yield from self._set_status(handle, 0)
        status = ACKNOWLEDGE
        yield from self._set_status(handle, status)
        status |= DRIVER
        yield from self._set_status(handle, status)
        blocks = info["num_feature_bits"] // 32
        offered_words = (yield from ask(handle, "GET_DEVICE_FEATURES", {"block_index": 0, "num_blocks": blocks}))
        offered = sum(word << (32 * i) for i, word in enumerate(offered_words.fields["features"]))
        wanted = offered & self.SUPPORTED_FEATURES
        words = [(wanted >> (32 * i)) & 0xFFFFFFFF for i in range(blocks)]
        yield from ask(handle, "SET_DRIVER_FEATURES", {"block_index": 0, "num_blocks": blocks, "features": words})
        status |= FEATURES_OK
        yield from self._set_status(handle, status)
        if not (yield from ask(handle, "GET_DEVICE_STATUS", {})).fields["status"] & FEATURES_OK:
            self._fail(handle, "device refused FEATURES_OK")
            return
        handle.features = wanted
        yield from self._read_config(handle, info["config_size"])
        event_idx = bool(wanted >> F_RING_EVENT_IDX & 1)
        for index in range(info["max_virtqueues"]):
            vq = (yield from ask(handle, "GET_VQUEUE", {"index": index})).fields
            if not vq["max_size"]:
                continue
            queue = handle.queues.get(index)  # after a reset the queue stays, its ring laid out afresh
            if queue is None:
                queue = handle.queues[index] = DriverQueue(self, handle, index, vq["max_size"], event_idx)
                if self.timeouts is not None and self.timeouts.queue_stall:
                    self.env.process(self._watch(handle, queue))
            yield from ask(handle, "SET_VQUEUE", {"index": index, "size": queue.size, **queue.addresses})
        for shm_id in SHM_IDS.get(info["device_id"], ()):  # after the queues, as Linux's virtio-fs probe asks
            region = (yield from ask(handle, "GET_SHM", {"index": shm_id})).fields
            if region["length"]:
                handle.shm[shm_id] = (region["address"], region["length"])
        status |= DRIVER_OK
        yield from self._set_status(handle, status)
        if handle.ready.triggered:
            return  # initialised again after a reset
        self.counts["devices_ready"] += 1
        device = bus.devices.get(dev_num)
        self.sim.init_done[device.name if device is not None else f"{bus.name}.{dev_num}"] = self.env.now
        handle.ready.succeed(handle)

    def _read_config(self, handle: DeviceHandle, size: int):
        """GET_CONFIG in chunks that fit the bus (as the Linux transport splits it), the whole read again
        until the generation its first answer carries is the one its last answer carries: a change made by
        the device in between may have left chunks of two generations (virtio 1.2 §2.5.1, the driver's
        before/after loop on the config generation; virtio-msg gives the generation with every chunk)."""
        chunk = handle.bus.max_msg_size - handle.bus.layout.header_size - CONFIG_RESPONSE_OVERHEAD
        while True:
            data = bytearray()
            generations = []
            while len(data) < size:
                length = min(chunk, size - len(data))
                answer = (yield from self._ask(handle, "GET_CONFIG", {"offset": len(data), "length": length})).fields
                if not answer["length"]:
                    break
                data += answer["data"]
                generations.append(answer["generation"])
            if not generations or generations[0] == generations[-1]:
                break
        if generations:
            handle.generation = generations[-1]
        handle.config = bytes(data)

    def _reread_config(self, handle: DeviceHandle):
        """After EVENT_CONFIG: read the config again until the read is of the newest generation announced;
        one such loop at a time, so an EVENT_CONFIG arriving meanwhile only raises what it reads up to."""
        handle.rereading = True
        try:
            while handle.generation < handle.announced:
                yield from self._read_config(handle, handle.info["config_size"])
        finally:
            handle.rereading = False

    def _fail(self, handle: DeviceHandle, why: str) -> None:
        handle.failed = why
        self.counts["devices_failed"] += 1
        handle.ready.fail(SimulationError(f"{self.name}: {handle.bus.name} dev {handle.dev_num}: {why}"))
        handle.ready.defused = True

    # --- the device's life: writes, resets, recovery -----------------------------------------------

    def _live(self, bus, dev_num: int, at: int):
        """Wait until `at`, then until the device is ready: its handle, or None once it is gone or failed."""
        yield self.env.timeout(at)
        handle = self.handles.get((bus.name, dev_num))
        if handle is None or handle.failed:
            return None
        yield handle.ready
        if self.handles.get((bus.name, dev_num)) is not handle or handle.failed:
            return None  # removed, or given up on, meanwhile
        return handle

    def write_config_at(self, bus, dev_num: int, at: int):
        """A scenario's `config_writes` entry: at `at` the driver writes the start of the config space with
        SET_CONFIG, giving the generation it last read; a device whose config changed since refuses the write
        (length 0), and the driver reads the config again and writes once more (virtio-msg's check that a
        write is made against what the driver saw)."""
        handle = yield from self._live(bus, dev_num, at)
        if handle is not None:
            yield from self._guarded(handle, self._write_config(handle))

    def _write_config(self, handle: DeviceHandle):
        room = handle.bus.max_msg_size - handle.bus.layout.header_size - CONFIG_RESPONSE_OVERHEAD
        length = min(room, len(handle.config))
        if not length:
            return  # nothing read, nothing to write back
        self._count("config_writes")
        while True:
            data = bytes(~byte & 0xFF for byte in handle.config[:length])  # a value the device does not hold
            fields = {"generation": handle.generation, "offset": 0, "length": length, "data": data}
            if (yield from self._ask(handle, "SET_CONFIG", fields)).fields["length"]:
                handle.config = data + handle.config[length:]
                return
            self._count("config_writes_refused")
            yield from self._read_config(handle, handle.info["config_size"])

    def reset_device(self, bus, dev_num: int, at: int):
        """A scenario's `reset_at`: reset a running device at `at` and bring it back, as a driver recovering it
        does (`_reset`)."""
        handle = yield from self._live(bus, dev_num, at)
        if handle is not None and not handle.resetting:
            self.counts["resets"] += 1
            yield from self._guarded(handle, self._reset(handle))

    def _reset(self, handle: DeviceHandle):
        """Reset the device and bring it back: its queues stop publishing, SET_DEVICE_STATUS(0) (the device drops
        what it holds) and the status read back until it is 0, the regions it shared are given back and
        reclaimed, the rings are laid out afresh with what was in flight queued again, and the device is
        initialised again."""
        bus, dev_num = handle.bus, handle.dev_num
        handle.resetting = True
        try:
            for queue in handle.queues.values():
                queue.halt()
            yield from self._set_status(handle, 0)
            while (yield from self._ask(handle, "GET_DEVICE_STATUS", {})).fields["status"]:
                self._count("reset_waits")  # virtio 1.2 §2.4: not reset until the status reads 0
            sharer = bus.sharers.get(dev_num)
            if sharer is not None:
                yield from sharer.reset()
            for queue in handle.queues.values():
                queue.restart()
            yield from self._initialise(bus, dev_num, reset=False, handle=handle)  # reset above, before the regions
            if handle.failed:
                return
            for queue in handle.queues.values():
                queue.resume()
            if sharer is not None:
                sharer.resume()
        finally:
            handle.resetting = False

    def reset_vqueue(self, bus, dev_num: int, vq: int, at: int):
        """A scenario's `vqueue_resets` entry: at `at`, virtqueue `vq` is reset and set up again (`_reset_queue`)."""
        handle = yield from self._live(bus, dev_num, at)
        if handle is not None and not handle.resetting:
            yield from self._guarded(handle, self._reset_queue(handle, vq))

    def _reset_queue(self, handle: DeviceHandle, vq: int):
        """One virtqueue reset and set up again while the device runs (virtio 1.2 §2.6.1): it stops publishing,
        RESET_VQUEUE (the device drops what the queue held), the ring is laid out afresh with what was in flight
        queued again, SET_VQUEUE, and it publishes again. Only with VIRTIO_F_RING_RESET negotiated; without it
        the whole device is reset instead."""
        if not handle.features >> F_RING_RESET & 1:
            self._count("vqueue_resets_as_device_resets")
            yield from self._reset(handle)
            return
        queue = handle.queues[vq]
        self._count("vqueue_resets")
        queue.halt()
        yield from self._ask(handle, "RESET_VQUEUE", {"index": vq})
        queue.restart()
        yield from self._ask(handle, "SET_VQUEUE", {"index": vq, "size": queue.size, **queue.addresses})
        queue.resume()

    def _needs_reset(self, handle: DeviceHandle):
        """EVENT_CONFIG with DEVICE_NEEDS_RESET: the status read to see it, then the device reset and
        initialised again (virtio 1.2 §2.1.1: the driver resets a device that needs it)."""
        if not (yield from self._ask(handle, "GET_DEVICE_STATUS", {})).fields["status"] & DEVICE_NEEDS_RESET:
            return
        if not handle.resetting:
            self._count("needs_reset")
            yield from self._reset(handle)

    def _guarded(self, handle: DeviceHandle, flow):
        """Run a flow that talks to the device; when the device stays silent (`PeerSilent`), recover it; when it
        was removed meanwhile (`DeviceGone`), just end."""
        try:
            yield from flow
        except PeerSilent as silent:
            yield from self._recover(handle, str(silent))
        except DeviceGone:
            return

    def _recover(self, handle: DeviceHandle, why: str):
        """The outcome of a silent device, in order: reset and initialise it again while the run's `resets`
        allow, then give up with FAILED."""
        if handle.failed or handle.resetting or self.handles.get((handle.bus.name, handle.dev_num)) is not handle:
            return  # given up on, already being recovered, or removed
        if handle.recoveries >= self.timeouts.resets:
            yield from self._give_up(handle, why)
            return
        handle.recoveries += 1
        self._count("recoveries")
        yield from self._guarded(handle, self._reset(handle))

    def _give_up(self, handle: DeviceHandle, why: str):
        """Recovery exhausted: the device is FAILED (virtio 1.2 §2.1: the driver has given up on it). Its queues
        drop what they hold and publish nothing more, its events are ignored, and FAILED is written to it once,
        without waiting past the response timeout for an answer that may never come."""
        if handle.failed or self.handles.get((handle.bus.name, handle.dev_num)) is not handle:
            return
        handle.failed = why
        self.counts["devices_failed"] += 1
        for queue in handle.queues.values():
            queue.halt(drop=True)
        handle.status |= FAILED
        frame = handle.bus.layout.encode("SET_DEVICE_STATUS", "request", {"status": handle.status},
                                         dev_num=handle.dev_num)
        wait = self.timeouts.response if self.timeouts is not None else self.keepalive.timeout
        yield from handle.bus.call(frame, wait, bus_message=False)

    def _watch(self, handle: DeviceHandle, queue: DriverQueue):
        """The stall watchdog of one virtqueue (`timeouts.queue_stall`): buffers out and none back for a whole
        period means a notification was lost somewhere. First the driver looks at the used ring itself and
        kicks the device again (a lost EVENT_USED or EVENT_AVAIL, a lost doorbell); a second period without
        progress resets the queue (`_reset_queue`); and that not helping either, the device is recovered."""
        period = self.timeouts.queue_stall
        seen = queue.reclaimed
        strikes = 0
        while not handle.failed and self.handles.get((handle.bus.name, handle.dev_num)) is handle:
            yield from queue.busy()
            yield self.env.timeout(period)
            if queue.reclaimed != seen or queue.halted or handle.resetting or not queue.in_flight():
                seen, strikes = queue.reclaimed, 0
                continue
            strikes += 1
            self._count("queue_stalls")
            if strikes == 1:
                yield from queue.reclaim()
                yield from queue.kick()
            elif strikes == 2:
                yield from self._guarded(handle, self._reset_queue(handle, queue.index))
            else:
                strikes = 0
                yield from self._recover(handle, f"{handle.bus.name} dev {handle.dev_num} vq {queue.index} stalled")
            seen = queue.reclaimed

    def _keepalive(self, bus):
        """PING the bus every `period` (virtio-msg's bus keepalive), each waiting `timeout` for its echo. Up to
        `misses` in a row may go unanswered (the next PING is the retry); one more and every device on the bus
        is reset (`outcome: reset`, each through `_recover`) or given up on (`outcome: fail`). It stops once
        every device on the bus has been given up on (a bus with none yet may have some hot-plugged)."""
        spec = self.keepalive
        missed = 0
        data = 0
        while True:
            yield self.env.timeout(spec.period)
            known = [h for (name, _), h in self.handles.items() if name == bus.name]
            handles = [h for h in known if not h.failed]
            if known and not handles:
                return
            data = data + 1 & 0xFFFFFFFF
            self._count("pings")
            frame = bus.layout.encode("PING", "request", {"data": data})
            answer = yield from bus.call(frame, spec.timeout)
            if answer is not None and answer.fields["data"] == data:
                missed = 0
                continue
            self._count("pings_missed")
            missed += 1
            if missed <= spec.misses:
                continue
            missed = 0
            for handle in handles:
                if spec.outcome == "fail":
                    self.env.process(self._give_up(handle, f"{bus.name}: no answer to PING"))
                else:
                    self.env.process(self._recover(handle, f"{bus.name}: no answer to PING"))

    # --- events from the bus ----------------------------------------------------------------------

    def on_event(self, bus, frame):
        """EVENT_USED: returns the queue's reclaim for the receive context to run; EVENT_CONFIG notes the
        generation it announces and has the config read again, or, carrying DEVICE_NEEDS_RESET, has the
        device reset, each in a process of its own (its answers arrive in the receive context that runs
        this). A device given up on is not listened to."""
        if frame.name == "EVENT_USED":
            return self.on_used(bus, frame.dev_num, frame["vq_index"])
        handle = self.handles.get((bus.name, frame.dev_num))
        if handle is None or handle.failed or frame.name != "EVENT_CONFIG":
            return None
        if frame["device_status"] & DEVICE_NEEDS_RESET:
            if handle.ready.triggered:
                self.env.process(self._guarded(handle, self._needs_reset(handle)))
            return None
        handle.announced = max(handle.announced, frame["generation"])
        if handle.ready.triggered and not handle.rereading:
            self.env.process(self._guarded(handle, self._reread_config(handle)))
        return None

    def on_used(self, bus, dev_num: int, vq: int):
        """A used-buffer notification for (dev_num, vq), in band or out of band: the reclaim to run."""
        handle = self.handles.get((bus.name, dev_num))
        if handle is None or handle.failed or vq not in handle.queues:
            return None
        return handle.queues[vq].reclaim()
