"""FF-A buses: what the scenario must hold for the FF-A plug-in to bootstrap and carry its frames."""

from __future__ import annotations

from collections.abc import Iterable

from vmsim.buses.ffa.protocol import MSG_SEND2_HEADER, RXTX_BUFFER
from vmsim.buses.problems import Problem, unknown
from vmsim.wire.ffa import MAX_FRAME, RFC2025_MAX_DEVICES
from vmsim.wire.fifo import HEADER_SIZE, MIN_MESSAGE_SIZE


def problems(scenario, largest_request) -> Iterable[Problem]:
    """FF-A: the partition and hypervisor exist on the platform, a VM partition is reached through a
    hypervisor, and frames fit the method (x4..x17 on direct, the RX buffer on indirect, two FIFO rings
    of at least two entries in `fifo_size`)."""
    ffa = scenario.platform.ffa
    partitions, hypervisors = (ffa.partitions, ffa.hypervisors) if ffa is not None else ({}, {})
    for index, bus in enumerate(scenario.buses):
        if bus.kind != "ffa":
            continue
        partition = partitions.get(bus.partition)
        if partition is None:
            yield ("buses", index, "partition"), unknown("ffa partition", bus.partition, partitions,
                                                         scenario.platform.name)
        if bus.hypervisor is not None and bus.hypervisor not in hypervisors:
            yield ("buses", index, "hypervisor"), unknown("ffa hypervisor", bus.hypervisor, hypervisors,
                                                          scenario.platform.name)
        elif bus.hypervisor is None and partition is not None and partition.kind == "vm":
            yield ("buses", index, "hypervisor"), (f"partition {bus.partition!r} is a normal-world VM: "
                                                   "name the hypervisor that mediates between the VMs")
        if bus.method == "direct" and bus.max_msg_size > MAX_FRAME:
            yield ("buses", index, "max_msg_size"), (f"{bus.max_msg_size} bytes do not fit a direct message: "
                                                     f"x4..x17 carry at most {MAX_FRAME} bytes of frame")
        room = RXTX_BUFFER - MSG_SEND2_HEADER.size
        if bus.method == "indirect" and bus.max_msg_size > room:
            yield ("buses", index, "max_msg_size"), (f"{bus.max_msg_size} bytes do not fit the {RXTX_BUFFER}-byte "
                                                     f"RX buffer after its message header ({room} bytes)")
        entry = max(MIN_MESSAGE_SIZE, bus.max_msg_size)
        if bus.method == "fifo" and (bus.fifo_size // 2 - HEADER_SIZE) // entry < 2:
            yield ("buses", index, "fifo_size"), (f"{bus.fifo_size} bytes hold no two rings of two "
                                                  f"{entry}-byte entries after their {HEADER_SIZE}-byte headers")
        if bus.release == "device" and bus.sharing != "per-buffer":
            yield ("buses", index, "release"), ("the device releases areas it was lent per buffer: "
                                                "`release: device` needs `sharing: per-buffer`")
        if bus.layout == "ffa-2025":
            yield from _ffa_2025_bus(scenario, index, bus, partition)
        elif bus.events == "indirect":
            yield ("buses", index, "events"), ("an ffa-2026 bus configures device events with EVENT_CONFIGURE: "
                                               "`notif` or `poll` (indirect and FIFO buses send them as messages)")


def _ffa_2025_bus(scenario, index: int, bus, partition) -> Iterable[Problem]:
    """What the RFC 2025 bus cannot do: no FIFO method and no EVENT_CONFIGURE (device events arrive as
    indirect messages), a method chosen by the partition's properties, at most 16 devices."""
    if bus.method == "fifo":
        yield ("buses", index, "method"), ("an ffa-2025 bus has no FIFO method (FIFO_CONFIGURE came in 2026): "
                                           "use direct or indirect")
    elif partition is not None:
        direct = "direct" in partition.features
        chosen = "direct" if direct else "indirect"
        if bus.method != chosen:
            yield ("buses", index, "method"), (
                f"an ffa-2025 bus takes its method from the partition's properties: {bus.partition!r} "
                f"{'takes' if direct else 'does not take'} direct requests, so the bus is {chosen}: "
                f"write `method: {chosen}`")
    if bus.events != "indirect":
        yield ("buses", index, "events"), (f"an ffa-2025 bus has no EVENT_CONFIGURE, so no {bus.events!r} events: "
                                           "device events arrive as indirect messages (leave `events` out "
                                           "or write `events: indirect`)")
    devices = [device for device in scenario.devices if device.bus == bus.name]
    if len(devices) > RFC2025_MAX_DEVICES:
        device = scenario.devices.index(devices[RFC2025_MAX_DEVICES])
        yield ("devices", device, "bus"), (f"bus {bus.name!r} is an ffa-2025 bus, whose driver supports at most "
                                           f"{RFC2025_MAX_DEVICES} devices: this is its {RFC2025_MAX_DEVICES + 1}th")


def share_checks(bus, sharing) -> Iterable[tuple[tuple, str]]:
    """Regions go through the bus's own memory calls: its areas are given back by the driver, at once."""
    if bus.release == "device":
        yield (), (f"bus {bus.name!r} has its areas given back per buffer by the device (`release: device`); "
                   "leave the bus at `release: driver` and set `release` under the device's sharing")
    if sharing.release == "device" and bus.unmap_delay:
        yield ("release",), (f"bus {bus.name!r} unmaps lazily (`unmap_delay`): a device that gives its "
                             "regions back itself needs them unmapped at once")
    if sharing.bounce:
        yield ("bounce",), f"bounce buffers are for an AMP carve-out; bus {bus.name!r} is {bus.kind}"
