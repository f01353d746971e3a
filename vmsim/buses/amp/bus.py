"""The AMP bus plug-in: two cores sharing a window of memory and a doorbell each way.

The window is a real `bytearray` laid out by `vmsim.wire`: with the 2026 format a 64-byte layout
header, one queue head per peer, one element array per direction and optional notification words
(L-amp26, Q-amp26); with the 2025 / 2024 formats two single-producer/single-consumer queues. Frames
are copied into elements, indices published, doorbells rung; the receiver drains its queue.
The 2026 handshake (INIT -> READY -> RUN) runs in simulated time before the first frame.
"""

from __future__ import annotations

from vmsim.errors import ScenarioError
from vmsim.sim.channel import Channel, QueuePairBus
from vmsim.sim.core import Simulation
from vmsim.sim.costs import MemoryCost
from vmsim.sim.share_mechanism import VmsimShare
from vmsim.wire.amp import RUN, AmpLayout, AmpQueuePeer
from vmsim.wire.spsc import PACKETS_OFFSET, SLOT_SIZE, create_queue_pair

LAYOUT_AND_HEADS = 80  # layout header (64) + two queue heads (8 each), Q-amp26 placement
NOTIFICATION_WORD = 8
ALL_BITS = (1 << 64) - 1


def vq_bits_per_device(queues: int) -> int:
    """Notification bits reserved per device: a power of two, 1..16 (num_vq_notif_per_device)."""
    bits = 1
    while bits < queues:
        bits *= 2
    return bits


class AmpBus(QueuePairBus):
    """Shared-memory queues plus doorbells; see the module docstring."""

    def __init__(self, sim: Simulation, spec, *, doorbell_to_device, doorbell_to_driver,
                 driver_memory: MemoryCost, device_memory: MemoryCost, driver_cpu_ns: int, device_cpu_ns: int,
                 max_queues: int, device_count: int, driver_cpu=None, device_cpu=None):
        in_band = spec.notify == "in-band"
        super().__init__(sim, spec.name, layout=spec.layout,
                         max_msg_size=spec.max_msg_size or spec.element_size, in_band=in_band)
        self.spec = spec
        self.mechanism = VmsimShare(self)  # the window is a carve-out both cores reach
        self.driver_cpu = driver_cpu or self.driver_cpu  # each side's work holds its core
        self.device_cpu = device_cpu or self.device_cpu
        # each region of the window counts its own traffic, per side (`vmsim.accounting`)
        counts = self.counts
        self.driver_memory = driver_memory.counted(counts, "virtqueue", "driver")
        self.device_memory = device_memory.counted(counts, "virtqueue", "device")
        queue_memory = {"driver": driver_memory.counted(counts, "queue", "driver"),
                        "device": device_memory.counted(counts, "queue", "device")}
        self.notification_memory = {"driver": driver_memory.counted(counts, "notification", "driver"),
                                    "device": device_memory.counted(counts, "notification", "device")}
        self.handshake_memory = {"driver": driver_memory.counted(counts, "handshake", "driver"),
                                 "device": device_memory.counted(counts, "handshake", "device")}
        self.ready = sim.env.event()
        self.format = spec.queue_format
        self._slots: dict[int, int] = {}
        self.vq_bits = vq_bits_per_device(max_queues)
        num_notif = 0 if in_band else -(-device_count * self.vq_bits // 64)
        if not in_band and (self.format != "amp-2026" or num_notif > 64 or self.vq_bits > 16):
            raise ScenarioError(f"bus {spec.name}: out-of-band notification needs the amp-2026 notification "
                                "words (at most 64 words, 16 virtqueues per device)")
        self.window = bytearray(self._window_bytes(num_notif))
        self.driver_peer = self.device_peer = None
        if self.format == "amp-2026":
            AmpLayout.init(self.window, 0, len(self.window), element_size=spec.element_size,
                           num_notif=num_notif, vq_notif_per_device=self.vq_bits if num_notif else 1,
                           masked_notif=spec.masked_notifications and num_notif > 0)
            self.device_peer = AmpQueuePeer(self.window, 0, "device")
            self.driver_peer = AmpQueuePeer(self.window, 0, "driver")
            to_device, to_driver = self.driver_peer.tx, self.device_peer.tx
        else:
            to_device, to_driver = create_queue_pair(self.format, self.window)
        common = {"bus_id": self.bus_id, "frame_in": self.frame_in, "polling_ns": spec.polling,
                  "budget": spec.rx_budget, "retry_ns": spec.tx_retry, "retries": spec.tx_retries}
        self.to_device = Channel(sim, f"{spec.name}.to_device", queue=to_device, doorbell_kind=doorbell_to_device,
                                 sender_memory=queue_memory["driver"], receiver_memory=queue_memory["device"],
                                 sender_cpu_ns=driver_cpu_ns, receiver_cpu_ns=device_cpu_ns,
                                 sender_cpu=self.driver_cpu, receiver_cpu=self.device_cpu,
                                 deliver=self.deliver_to_device, **common)
        self.to_driver = Channel(sim, f"{spec.name}.to_driver", queue=to_driver, doorbell_kind=doorbell_to_driver,
                                 sender_memory=queue_memory["device"], receiver_memory=queue_memory["driver"],
                                 sender_cpu_ns=device_cpu_ns, receiver_cpu_ns=driver_cpu_ns,
                                 sender_cpu=self.device_cpu, receiver_cpu=self.driver_cpu,
                                 deliver=self.deliver_to_driver, **common)
        if num_notif:
            self.to_device.extra_pending = lambda: self._drain_notifications(self.device_peer, self.to_device)
            self.to_driver.extra_pending = lambda: self._drain_notifications(self.driver_peer, self.to_driver)
        self._state_event = sim.log.events("amp.state")

    @classmethod
    def build(cls, sim: Simulation, spec, context) -> AmpBus:
        driver_memory, device_memory = context.side_memory(spec.memory)
        return cls(sim, spec, doorbell_to_device=context.doorbell(spec.doorbell),
                   doorbell_to_driver=context.doorbell(spec.doorbell_to_driver or spec.doorbell),
                   driver_memory=driver_memory, device_memory=device_memory,
                   driver_cpu_ns=context.cpu_ns(context.driver.cpu), device_cpu_ns=context.device_cpu_ns,
                   max_queues=max((d.queues for d in context.devices), default=1),
                   device_count=len(context.devices), driver_cpu=context.driver_processor(),
                   device_cpu=context.device_processor())

    def _window_bytes(self, num_notif: int) -> int:
        n, size = self.spec.queue_elements, self.spec.element_size
        if self.format == "amp-2026":
            words = num_notif * (3 if self.spec.masked_notifications else 2)
            start = LAYOUT_AND_HEADS + 2 * NOTIFICATION_WORD * words
            return start + 2 * n * size
        if size != SLOT_SIZE:
            raise ScenarioError(f"bus {self.spec.name}: {self.format} slots are {SLOT_SIZE} bytes, "
                                f"element_size is {size}")
        if self.format == "spsc-2025":
            return 2 * (PACKETS_OFFSET + n * SLOT_SIZE)
        return 2 * (PACKETS_OFFSET + SLOT_SIZE + (n - 1) * SLOT_SIZE)  # spsc-2024: (mapsize-192)/64 + 1 slots

    def attach_device(self, device) -> None:
        super().attach_device(device)
        self._slots[device.dev_num] = len(self._slots)

    # --- start-up ---------------------------------------------------------------------------------

    def start(self) -> None:
        super().start()
        if self.format == "amp-2026":
            memory = self.handshake_memory
            both = [self.env.process(self._handshake(self.device_peer, memory["device"], self.device_cpu)),
                    self.env.process(self._handshake(self.driver_peer, memory["driver"], self.driver_cpu))]
            self.env.all_of(both).callbacks.append(lambda _event: self.ready.succeed())
        else:
            self.ready.succeed()

    def _handshake(self, peer: AmpQueuePeer, memory: MemoryCost, cpu):
        """INIT -> READY -> RUN (L-amp26 `vmamp_shmem_queue_init`), re-checking every `handshake_retry`."""
        log = self.sim.log
        component = log.components(f"{self.name}.{peer.role}")
        state = peer.start()
        laid_out = memory.write(peer.tx.slots * peer.tx.element_size + 8)
        cpu.by_activity["setup"] += laid_out
        yield from cpu.hold(laid_out)
        log.mark(self.env.now, component, self._state_event, self.bus_id, -1, state)
        while state != RUN:
            looked = memory.access(8, 8)
            cpu.by_activity["setup"] += looked
            yield from cpu.hold(looked)
            new = peer.poll_handshake()
            if new != state:
                state = new
                log.mark(self.env.now, component, self._state_event, self.bus_id, -1, state)
                continue
            yield self.env.timeout(self.spec.handshake_retry)

    # --- transport ----------------------------------------------------------------------------------

    def signal_device(self, dev_num: int, vq: int):
        yield from self._raise(self.driver_peer, self.to_device, self.notification_memory["driver"], dev_num, vq)

    def signal_driver(self, dev_num: int, vq: int):
        yield from self._raise(self.device_peer, self.to_driver, self.notification_memory["device"], dev_num, vq)

    def _raise(self, peer: AmpQueuePeer, channel: Channel, memory: MemoryCost, dev_num: int, vq: int):
        """Toggle my tx bit for (device, vq) and ring unless the peer masked it (the XOR rule)."""
        interrupt = peer.notif.notify(self._slots[dev_num] * self.vq_bits + vq)
        cost = memory.access(NOTIFICATION_WORD, NOTIFICATION_WORD)
        if cost:
            channel.sender_cpu.by_activity["notify"] += cost
            yield from channel.sender_cpu.hold(cost)
        if interrupt:
            yield from channel.ring(dev_num)

    def _drain_notifications(self, peer: AmpQueuePeer, channel: Channel):
        """Acknowledge pending bits (my.rx ^= my.rx XOR peer.tx) and dispatch each to its queue.

        With masked notifications the handler masks its words while it works, so the peer raises bits
        without interrupting, then unmasks and looks again before it returns (L-amp26 FEAT_MASKED_NOTIF).
        """
        notifier = peer.notif
        memory = self.notification_memory[peer.role]
        words = range(notifier.num_notif)
        numbers = {slot: n for n, slot in self._slots.items()}
        while True:
            if notifier.masked:
                yield from self._set_masks(notifier, memory, ALL_BITS, channel.receiver_cpu)
            for word in words:
                cost = memory.read(2 * NOTIFICATION_WORD)
                if cost:
                    channel.receiver_cpu.by_activity["notify"] += cost
                    yield from channel.receiver_cpu.hold(cost, irq=True)
                bits = notifier.acknowledge(word)
                while bits:
                    low = bits & -bits
                    bit = 64 * word + low.bit_length() - 1
                    bits ^= low
                    dev_num = numbers[bit // self.vq_bits]
                    vq = bit % self.vq_bits
                    if peer is self.device_peer:
                        self.devices[dev_num].notify(vq)
                    else:
                        work = self.driver.on_used(self, dev_num, vq)
                        if work is not None:
                            yield from work
            if not notifier.masked:
                return
            yield from self._set_masks(notifier, memory, 0, channel.receiver_cpu)
            if not any(notifier.pending(word) for word in words):
                return

    def _set_masks(self, notifier, memory: MemoryCost, bits: int, cpu):
        for word in range(notifier.num_notif):
            notifier.set_mask(word, bits)
        cost = memory.write(NOTIFICATION_WORD * notifier.num_notif)
        if cost:
            cpu.by_activity["notify"] += cost
            yield from cpu.hold(cost, irq=True)
