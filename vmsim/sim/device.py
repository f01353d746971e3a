"""The virtio-msg device: transport state machine, config space, per-virtqueue workers.

Written once for every bus. The bus hands it decoded request frames (`on_frame`) and it returns
exactly one response frame per request and none to an event (S-pr28). Each configured virtqueue
has a long-lived worker that pops available buffers from the real split ring, serves them with the
scenario's service-time model and returns them on the used ring.
"""

from __future__ import annotations

from vmsim.sim.core import Component, Simulation
from vmsim.sim.costs import NO_SOFTWARE, Sampler, SoftwareCost
from vmsim.sim.virtqueue import DeviceQueue
from vmsim.wire.virtio import (
    DEVICE_NEEDS_RESET,
    DRIVER_OK,
    F_RING_EVENT_IDX,
    F_RING_RESET,
    F_VERSION_1,
    FAILED,
    FEATURES_OK,
)

VENDOR_ID = 0x4D534D56  # "VMSM" little-endian: the simulated vendor
CONFIG_REJECTED = 0


class Device(Component):
    """One virtio device behind a bus, addressed by `dev_num`."""

    def __init__(self, sim: Simulation, name: str, *, bus, dev_num: int, device_id: int, queues: int,
                 queue_size: int, config_size: int, feature_bits: int, service: Sampler,
                 copy_payload: bool, added_at: int | None, event_idx: bool, removed_at: int | None = None,
                 software: SoftwareCost = NO_SOFTWARE, hardware_engine: bool = False, ring_reset: bool = False,
                 shm: tuple = ()):
        super().__init__(sim, name)
        self.bus = bus
        self.dev_num = dev_num
        self.device_id = device_id
        self.num_queues = queues
        self.queue_size = queue_size
        self.feature_bits = feature_bits
        self.offered = 1 << F_VERSION_1 | (1 << F_RING_EVENT_IDX if event_idx else 0) | (
            1 << F_RING_RESET if ring_reset else 0)
        # shared memory regions by id: (address, length); the address is reserved, no bytes behind it
        self.shm = {region.id: (sim.addresses.reserve(region.length), region.length) for region in shm}
        self.service = service
        self.copy_payload = copy_payload
        self.software = software  # its own software per message: the task woken per request, its reply
        self.hardware_engine = hardware_engine  # service runs in hardware of its own, not on the device's core
        self.added_at = added_at
        self.removed_at = removed_at  # hot-unplug: the bus removes the device then
        self.shares = None  # the bus's DeviceShares when this device's buffers are shared under a policy
        self.config = bytearray(config_size)
        self.generation = 0
        self.status = 0
        self.driver_features = 0
        self.vq_config: dict[int, dict] = {}
        self.queues: dict[int, DeviceQueue] = {}
        self._encode = bus.layout.encode
        self._handlers = {
            "GET_DEVICE_INFO": self._get_device_info,
            "GET_DEVICE_FEATURES": self._get_device_features,
            "SET_DRIVER_FEATURES": self._set_driver_features,
            "GET_DEVICE_STATUS": self._get_device_status,
            "SET_DEVICE_STATUS": self._set_device_status,
            "GET_CONFIG": self._get_config,
            "SET_CONFIG": self._set_config,
            "GET_VQUEUE": self._get_vqueue,
            "SET_VQUEUE": self._set_vqueue,
            "RESET_VQUEUE": self._reset_vqueue,
            "GET_SHM": self._get_shm,
            "EVENT_AVAIL": self._event_avail,
        }
        bus.attach_device(self)

    # --- transport messages -----------------------------------------------------------------------

    def on_frame(self, frame):
        """Handle one frame; return the response bytes for a request, None for an event."""
        handler = self._handlers.get(frame.name)
        if handler is None or frame.kind == "response":
            self.bus.counts["discarded"] += 1
            return None
        fields = handler(frame.fields)
        if frame.kind == "event":
            return None
        return self._encode(frame.name, "response", fields, dev_num=self.dev_num, token=frame.token)

    def _count(self, what: str) -> None:
        """Count a lifecycle event in the device's counters (made on first use: most devices have none)."""
        counts = self.sim.counter(self.name)
        counts[what] = counts.get(what, 0) + 1

    def _get_device_info(self, _fields):
        return {"device_id": self.device_id, "vendor_id": VENDOR_ID, "num_feature_bits": self.feature_bits,
                "config_size": len(self.config), "max_virtqueues": self.num_queues,
                "admin_vq_start": 0, "admin_vq_count": 0}

    def _feature_words(self, bits: int, first: int, count: int) -> list[int]:
        return [(bits >> (32 * block)) & 0xFFFFFFFF for block in range(first, first + count)]

    def _get_device_features(self, fields):
        first, count = fields["block_index"], fields["num_blocks"]
        return {"block_index": first, "num_blocks": count, "features": self._feature_words(self.offered, first, count)}

    def _set_driver_features(self, fields):
        first = fields["block_index"]
        for block, word in enumerate(fields["features"], start=first):
            self.driver_features &= ~(0xFFFFFFFF << (32 * block))
            self.driver_features |= word << (32 * block)
        return {}

    def _get_device_status(self, _fields):
        return {"status": self.status}

    def _set_device_status(self, fields):
        status = fields["status"]
        if status == 0:
            self.reset()
            return {"status": 0}
        if status & FEATURES_OK and not self.status & FEATURES_OK and self.driver_features & ~self.offered:
            status &= ~FEATURES_OK  # the driver accepted features we never offered: refuse
        if status & DRIVER_OK and not self.status & DRIVER_OK:
            self._activate()
        if status & FAILED:  # the driver gave up on us: serve nothing more
            for queue in self.queues.values():
                queue.stop()
        self.status = status | self.status & DEVICE_NEEDS_RESET  # only a reset clears it
        return {"status": self.status}

    def reset(self) -> None:
        """SET_DEVICE_STATUS(0): forget negotiation and virtqueues; in-flight buffers are dropped."""
        self.status = 0
        self.driver_features = 0
        for queue in self.queues.values():
            queue.stop()
        self.queues.clear()
        self.vq_config.clear()
        self.bus.forget_events(self.dev_num)

    def _get_config(self, fields):
        offset, length = fields["offset"], fields["length"]
        data = bytes(self.config[offset:offset + length])
        return {"generation": self.generation, "offset": offset, "length": len(data), "data": data}

    def _set_config(self, fields):
        offset, data = fields["offset"], fields["data"]
        if fields["generation"] != self.generation or offset + len(data) > len(self.config):
            return {"generation": self.generation, "offset": offset, "length": CONFIG_REJECTED, "data": b""}
        self.config[offset:offset + len(data)] = data
        return {"generation": self.generation, "offset": offset, "length": len(data), "data": bytes(data)}

    def change_config_at(self, at: int):
        """A scenario's `config_changes` entry: at `at` every byte of the config space becomes the new
        generation's low byte, so that a read mixing two generations shows in the bytes too."""
        yield self.env.timeout(at)
        if self.bus.devices.get(self.dev_num) is self:  # not once the bus has removed it
            yield from self.change_config(0, bytes([(self.generation + 1) & 0xFF]) * len(self.config))

    def change_config(self, offset: int, data: bytes):
        """A device-side config change: bump the generation first, then tell the driver (a generator), once
        it is live: before DRIVER_OK the driver is still reading the config, and sees the new generation."""
        self.generation += 1
        self.config[offset:offset + len(data)] = data
        if not self.status & DRIVER_OK:
            return
        fields = {"device_status": self.status, "generation": self.generation, "offset": offset,
                  "length": len(data), "data": bytes(data)}
        frame = self._encode("EVENT_CONFIG", "event", fields, dev_num=self.dev_num)
        if len(frame) > self.bus.max_msg_size:  # too much to carry: say where, and the driver reads it
            frame = self._encode("EVENT_CONFIG", "event", fields | {"length": 0, "data": b""}, dev_num=self.dev_num)
        yield from self.bus.event_to_driver(self.dev_num, frame)

    def needs_reset_at(self, at: int):
        """A scenario's `needs_reset_at` entry: at `at` the device hits an error it cannot go on from: it sets
        DEVICE_NEEDS_RESET, stops serving (what its queues hold is dropped; the driver publishes it again after
        the reset) and says so with EVENT_CONFIG carrying the status (virtio 1.2 §2.1.2). Only a live device
        (past DRIVER_OK, not removed) has anything to go wrong: at another time nothing happens."""
        yield self.env.timeout(at)
        if self.bus.devices.get(self.dev_num) is not self or not self.status & DRIVER_OK:
            return
        self._count("needs_reset")
        self.status |= DEVICE_NEEDS_RESET
        for queue in self.queues.values():
            queue.stop()
        self.queues.clear()
        fields = {"device_status": self.status, "generation": self.generation, "offset": 0, "length": 0, "data": b""}
        frame = self._encode("EVENT_CONFIG", "event", fields, dev_num=self.dev_num)
        yield from self.bus.event_to_driver(self.dev_num, frame)

    def _get_vqueue(self, fields):
        index = fields["index"]
        valid = index < self.num_queues
        config = self.vq_config.get(index, {})
        return {"index": index, "max_size": self.queue_size if valid else 0, "cur_size": config.get("size", 0),
                "desc_addr": config.get("desc_addr", 0), "driver_addr": config.get("driver_addr", 0),
                "device_addr": config.get("device_addr", 0)}

    def _set_vqueue(self, fields):
        index = fields["index"]
        if index < self.num_queues and 0 < fields["size"] <= self.queue_size:
            self.vq_config[index] = config = {key: fields[key]
                                              for key in ("size", "desc_addr", "driver_addr", "device_addr")}
            if self.status & DRIVER_OK and index not in self.queues:  # a queue set up again after RESET_VQUEUE
                self._enable(index, config)
        return {}

    def _reset_vqueue(self, fields):
        """RESET_VQUEUE: only with VIRTIO_F_RING_RESET negotiated (virtio 1.2 §2.6.1); otherwise refused and
        counted, the queue left as it was."""
        if not self.driver_features >> F_RING_RESET & 1:
            self._count("vqueue_resets_refused")
            return {}
        self._count("vqueue_resets")
        queue = self.queues.pop(fields["index"], None)
        if queue is not None:
            queue.stop()
        self.vq_config.pop(fields["index"], None)
        return {}

    def _get_shm(self, fields):
        """GET_SHM: the region's address and length, length 0 for an id the device has no region for (the
        linux-2026 layout calls the id `shmid`)."""
        key = "index" if "index" in fields else "shmid"
        address, length = self.shm.get(fields[key], (0, 0))
        return {key: fields[key], "length": length, "address": address}

    def _event_avail(self, fields):
        self.notify(fields["vq_index"])
        return {}

    # --- data path --------------------------------------------------------------------------------

    def notify(self, vq: int) -> None:
        """Buffers are available on `vq` (EVENT_AVAIL or an out-of-band doorbell)."""
        queue = self.queues.get(vq)
        if queue is not None:
            queue.kick()

    def _activate(self) -> None:
        for index, config in self.vq_config.items():
            self._enable(index, config)

    def _enable(self, index: int, config: dict) -> None:
        event_idx = bool(self.driver_features >> F_RING_EVENT_IDX & 1)
        ring = self.sim.addresses.resolve(config["desc_addr"])
        self.queues[index] = DeviceQueue(self, index, ring, config["size"], event_idx)
