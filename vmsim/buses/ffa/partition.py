"""Who an FF-A bus crosses: the per-hop costs of its path, the partition's shared vCPUs, and each end's
RX/TX buffers, lock, notification and log components."""

from __future__ import annotations

import simpy

from vmsim.buses.ffa.protocol import RXTX_BUFFER, partition_features
from vmsim.sim.core import Component, Simulation
from vmsim.sim.costs import MemoryCost
from vmsim.sim.doorbell import Doorbell
from vmsim.sim.receive import Waker
from vmsim.sim.vcpus import VcpuPool


class FfaPath:
    """What crossing the FF-A stack costs: `leg` carries a frame one way between the driver and the
    partition; `driver_call` / `partition_call` are an ABI call the framework (SPMC, or the hypervisor
    for a VM partition) answers, there and back. Built from the platform's per-pass costs (A.6)."""

    __slots__ = ("driver_call", "leg", "partition_call")

    def __init__(self, costs, kind: str, hypervisor):
        hop = hypervisor.trap + hypervisor.forward if hypervisor is not None else 0
        if kind == "vm":
            to_framework, to_partition, from_partition = hop, hypervisor.vm_switch, hop
        else:
            to_framework = hop + costs.el3_switch + costs.spmd_context + costs.spmc_dispatch
            s_el2 = costs.sel2_switch if kind == "hafnium" else 0
            to_partition, from_partition = s_el2, s_el2 + costs.spmc_dispatch
        self.leg = to_framework + to_partition
        self.driver_call = 2 * to_framework
        self.partition_call = 2 * from_partition


class Partition(Component):
    """The vCPUs of one partition, shared by every bus it serves: the frames it handles and the
    buffers its devices serve hold one while they run, so a busy partition delays the next call."""

    def __init__(self, sim: Simulation, name: str, spec):
        super().__init__(sim, f"partition.{name}")
        self.kind = spec.kind
        self.features = partition_features(spec.features)
        self.max_areas = spec.max_areas
        self.counts = sim.counter(self.name)
        self.counts.update(servers=spec.vcpus, busy_ns=0, busy_answers=0, yields=0)
        self.counts[VcpuPool.HELD_ACCOUNT] = 0
        self.vcpus = VcpuPool(sim.env, spec.vcpus, self.counts)

    @classmethod
    def shared(cls, sim: Simulation, name: str, spec, context) -> Partition:
        """The partition every bus to it shares, made by the first and reported with the model's processors."""
        key = ("ffa.partition", name)
        if key not in context.shared:
            partition = context.shared[key] = cls(sim, name, spec)
            context.adopt_processor(partition.name, partition.vcpus)
        return context.shared[key]


class Mailbox:
    """An endpoint's RX buffer: FFA_MSG_SEND2 copies one message in, the owner reads it and hands the
    buffer back with FFA_RX_RELEASE; until then a send to this endpoint is answered BUSY."""

    __slots__ = ("buffer", "full")

    def __init__(self):
        self.buffer = bytearray(RXTX_BUFFER)
        self.full = False


class Side:
    """One end of the bus: its send lock, the core its work holds, CPU and memory costs, ABI call cost,
    RX/TX buffers, FIFO ring ends, the notification that wakes its handler, and its log components."""

    __slots__ = ("bell", "call", "component", "cpu", "cpu_ns", "endpoint", "fifo_rx", "fifo_tx", "inbound", "lock",
                 "memory", "outbound", "rx", "sent", "space", "tx", "wake")

    def __init__(self, bus, role: str, endpoint: int, cpu, cpu_ns: int, memory: MemoryCost, call: int, kind):
        sim, env, log = bus.sim, bus.env, bus.sim.log
        toward = "to_device" if role == "device" else "to_driver"
        self.endpoint = endpoint
        self.cpu = cpu  # the driver's core, or the partition's vCPUs
        self.cpu_ns = cpu_ns
        self.memory = memory
        self.call = call
        self.lock = simpy.Resource(env, 1)
        self.component = log.components(f"{bus.name}.{role}")
        self.inbound = log.components(f"{bus.name}.{toward}")
        self.outbound = None  # the peer's inbound: frames this side sends
        self.sent = None
        self.tx = bytearray(RXTX_BUFFER)
        self.rx = Mailbox()
        self.fifo_tx = self.fifo_rx = None
        self.wake = Waker(env)
        self.bell = Doorbell(sim, f"{bus.name}.{toward}.doorbell", kind, bus.bus_id, self.wake.kick)
        self.space = env.event()

    def work(self, activity: str, cost: int, irq: bool = False):
        """`cost` ns of this side's work on its core, said to be for `activity` (`vmsim.sim.processor`);
        `irq` for its receive handler's work."""
        self.cpu.by_activity[activity] += cost
        yield from self.cpu.hold(cost, irq)

    def release_space(self) -> None:
        """A notification arrived: wake a sender waiting for room in its FIFO ring (notify-after-full)."""
        if self.space.callbacks:
            self.space.succeed()
            self.space = self.space.env.event()
