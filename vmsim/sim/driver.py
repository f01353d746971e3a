"""The virtio-msg driver (transport, driver side): discovery, initialisation, I/O.

Written once for every bus. It discovers devices with the bus message GET_DEVICES (or takes the
platform's list), initialises each one with real frames in the order the virtio and virtio-msg
specs require, and then moves I/O through split virtqueues whose rings live in real bytes.
"""

from __future__ import annotations

from vmsim.sim.core import Component, Simulation, SimulationError
from vmsim.sim.costs import NO_SOFTWARE, SoftwareCost
from vmsim.sim.virtqueue import DriverQueue
from vmsim.wire.virtio import ACKNOWLEDGE, DRIVER, DRIVER_OK, F_RING_EVENT_IDX, F_VERSION_1, FEATURES_OK

GET_DEVICES_WINDOW = 32  # device numbers asked per GET_DEVICES (VMA_MAX_DEVS in L-amp26)
CONFIG_RESPONSE_OVERHEAD = 12  # generation, offset, length before data[] in GET_CONFIG's response


class DeviceHandle:
    """What the driver knows about one device: its info, negotiated features, config and queues."""

    __slots__ = ("announced", "bus", "config", "dev_num", "failed", "features", "generation", "info", "queues",
                 "ready", "rereading")

    def __init__(self, bus, dev_num: int, ready):
        self.bus = bus
        self.dev_num = dev_num
        self.info: dict = {}
        self.features = 0
        self.config = b""
        self.generation = 0
        self.queues: dict[int, DriverQueue] = {}
        self.ready = ready
        self.failed = False
        self.announced = 0  # the newest generation an EVENT_CONFIG gave
        self.rereading = False  # a read of the config after EVENT_CONFIG is under way


class Driver(Component):
    """One driver instance; a bus belongs to exactly one driver, a driver may own several buses."""

    SUPPORTED_FEATURES = 1 << F_VERSION_1 | 1 << F_RING_EVENT_IDX

    def __init__(self, sim: Simulation, name: str, *, discovery: str, software: SoftwareCost = NO_SOFTWARE,
                 copies_payload: bool = False):
        super().__init__(sim, name)
        self.discovery = discovery
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

    # --- discovery and initialisation ------------------------------------------------------------

    def _probe(self, bus):
        if self.discovery == "platform":
            numbers = [n for n, d in sorted(bus.devices.items()) if not d.added_at]
        else:
            numbers = []
            offset = 0
            count = bus.get_devices_count or GET_DEVICES_WINDOW
            while True:
                frame = bus.layout.encode("GET_DEVICES", "request", {"offset": offset, "count": count})
                response = yield bus.request(0, frame, bus_message=True)
                bitmap = response.fields["bitmap"]
                numbers += [offset + bit for bit in range(len(bitmap) * 8) if bitmap[bit // 8] >> (bit % 8) & 1]
                offset = response.fields["next_offset"]
                if not offset:
                    break
        for dev_num in numbers:
            self.env.process(self._initialise(bus, dev_num))

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
            self.env.process(self._initialise(bus, dev_num))

    def reset_device(self, bus, dev_num: int, at: int):
        """Reset a running device at `at` and bring it back, as a driver recovering it does: its queues stop
        publishing, SET_DEVICE_STATUS(0) (the device drops what it holds), the regions it shared are given back
        and reclaimed, the rings are laid out afresh with what was in flight queued again, and the device is
        initialised again."""
        yield self.env.timeout(at)
        handle = self.handles.get((bus.name, dev_num))
        if handle is None or handle.failed:
            return
        yield handle.ready
        if self.handles.get((bus.name, dev_num)) is not handle:
            return  # removed meanwhile
        self.counts["resets"] += 1
        for queue in handle.queues.values():
            queue.halt()
        yield self._ask(handle, "SET_DEVICE_STATUS", {"status": 0})
        sharer = bus.sharers.get(dev_num)
        if sharer is not None:
            yield from sharer.reset()
        for queue in handle.queues.values():
            queue.restart()
        yield from self._initialise(bus, dev_num, reset=False)  # reset just above, before the regions went back
        for queue in handle.queues.values():
            queue.resume()
        if sharer is not None:
            sharer.resume()

    def _ask(self, handle: DeviceHandle, name: str, fields: dict):
        frame = handle.bus.layout.encode(name, "request", fields, dev_num=handle.dev_num)
        return handle.bus.request(handle.dev_num, frame)

    def _initialise(self, bus, dev_num: int, reset: bool = True):
        """virtio 1.x §3.1.1 over virtio-msg: GET_DEVICE_INFO (the one message an inactive device takes),
        reset (status 0) unless the caller has just reset it, ACKNOWLEDGE, then DRIVER, each its own write;
        features, FEATURES_OK, then the status read back with GET_DEVICE_STATUS to see that FEATURES_OK
        stayed set (step 6); config, GET_VQUEUE then SET_VQUEUE per queue, DRIVER_OK."""
        handle = self.handle(bus, dev_num)
        ask = self._ask
        info = (yield ask(handle, "GET_DEVICE_INFO", {})).fields
        handle.info = info
        if reset:
            yield ask(handle, "SET_DEVICE_STATUS", {"status": 0})
        status = ACKNOWLEDGE
        yield ask(handle, "SET_DEVICE_STATUS", {"status": status})
        status |= DRIVER
        yield ask(handle, "SET_DEVICE_STATUS", {"status": status})
        blocks = info["num_feature_bits"] // 32
        offered_words = (yield ask(handle, "GET_DEVICE_FEATURES", {"block_index": 0, "num_blocks": blocks}))
        offered = sum(word << (32 * i) for i, word in enumerate(offered_words.fields["features"]))
        wanted = offered & self.SUPPORTED_FEATURES
        words = [(wanted >> (32 * i)) & 0xFFFFFFFF for i in range(blocks)]
        yield ask(handle, "SET_DRIVER_FEATURES", {"block_index": 0, "num_blocks": blocks, "features": words})
        status |= FEATURES_OK
        yield ask(handle, "SET_DEVICE_STATUS", {"status": status})
        if not (yield ask(handle, "GET_DEVICE_STATUS", {})).fields["status"] & FEATURES_OK:
            self._fail(handle, "device refused FEATURES_OK")
            return
        handle.features = wanted
        yield from self._read_config(handle, info["config_size"])
        event_idx = bool(wanted >> F_RING_EVENT_IDX & 1)
        for index in range(info["max_virtqueues"]):
            vq = (yield ask(handle, "GET_VQUEUE", {"index": index})).fields
            if not vq["max_size"]:
                continue
            queue = handle.queues.get(index)  # after a reset the queue stays, its ring laid out afresh
            if queue is None:
                queue = handle.queues[index] = DriverQueue(self, handle, index, vq["max_size"], event_idx)
            yield ask(handle, "SET_VQUEUE", {"index": index, "size": queue.size, **queue.addresses})
        status |= DRIVER_OK
        yield ask(handle, "SET_DEVICE_STATUS", {"status": status})
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
                answer = (yield self._ask(handle, "GET_CONFIG", {"offset": len(data), "length": length})).fields
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
        handle.failed = True
        self.counts["devices_failed"] += 1
        handle.ready.fail(SimulationError(f"{self.name}: {handle.bus.name} dev {handle.dev_num}: {why}"))
        handle.ready.defused = True

    # --- events from the bus ----------------------------------------------------------------------

    def on_event(self, bus, frame):
        """EVENT_USED: returns the queue's reclaim for the receive context to run; EVENT_CONFIG notes the
        generation it announces and has the config read again, in a process of its own (its answers arrive in
        the receive context that runs this)."""
        if frame.name == "EVENT_USED":
            return self.on_used(bus, frame.dev_num, frame["vq_index"])
        handle = self.handles.get((bus.name, frame.dev_num))
        if handle is not None and frame.name == "EVENT_CONFIG":
            handle.announced = max(handle.announced, frame["generation"])
            if handle.ready.triggered and not handle.rereading:
                self.env.process(self._reread_config(handle))
        return None

    def on_used(self, bus, dev_num: int, vq: int):
        """A used-buffer notification for (dev_num, vq), in band or out of band: the reclaim to run."""
        handle = self.handles.get((bus.name, dev_num))
        if handle is None or vq not in handle.queues:
            return None
        return handle.queues[vq].reclaim()
