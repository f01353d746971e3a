"""What each request cost, counted: bytes, cache lines, doorbells, interrupts, polls, frames and CPU time
per bus and per device, and the bytes per memory region and side (summary.json's `accounting`).

The simulator counts as it goes, at no cost to its schedule: every shared-memory access counts its bytes and
the cache lines it is charged for in its bus's counters (`memory.<region>.<side>.<name>`, see
`vmsim.sim.costs.MemoryCost`); doorbells, queues and processors keep their own counters. This module only
adds them up. Totals cover the whole run, start-up included; per-request figures divide them by the requests
completed by the end. Devices on one bus share its queues, its memory and its doorbells, and a driver's core
may serve several buses: what the model counts per bus is given to each device (and a core's time to each
bus) in proportion to the requests it completed (docs/queue-formats.md says what each format touches).
"""

from __future__ import annotations

from vmsim.sim.costs import TRAFFIC
from vmsim.sim.output import SimOutput

STRUCTURE = {
    "buses.<bus>.totals": "the bus's figures over the whole run, start-up included (below)",
    "buses.<bus>.per_request": "`totals` over the bus's requests completed by the end; null when none completed",
    "buses.<bus>.regions.<region>.<side>": "`bytes_read`, `bytes_written`, `cache_lines` of one region (below) "
                                           "seen from the `driver` or the `device` side",
    "buses.<bus>.devices.<device>": "`totals` and `per_request` of one device (dotted name): the bus's totals in "
                                    "proportion to the requests it completed, as the devices of a bus share "
                                    "its queues, memory and doorbells",
}
MEANINGS = {
    "bytes_read": "bytes of shared memory read, all regions and both sides",
    "bytes_written": "bytes of shared memory written, all regions and both sides",
    "cache_lines": "lines the reads and writes were charged for: each access counts the lines of the memory "
                   "kind's `line_bytes` it starts (`copy_line_bytes` for payload copies); on non-cacheable "
                   "memory a line is one access of that width",
    "doorbells": "doorbells rung by either side (`rung` + `coalesced` of its doorbells: a ring that merged "
                 "into one still on its way was rung too), FF-A notifications and Xen event-channel sends "
                 "included",
    "interrupts": "handler runs the doorbells caused (`delivered`)",
    "polls": "looks a polling receiver took at its queue (`polling:`), and FF-A FFA_EVENT_POLL calls",
    "frames": "frames the bus carried, both directions (FF-A direct messages included)",
    "cpu_ns": "work done on the processors (`busy_ns`): a processor named after the bus (`<bus>.device_cpu`) is "
              "the bus's, any other (a driver's core, a domain's vCPUs) is shared out by the requests each "
              "bus completed",
}
"""What each figure of `totals` and `per_request` counts (results/README.md shows them: `keys_table`)."""
QUANTITIES = tuple(MEANINGS)
SIDES = ("driver", "device")
REGIONS = {
    "queue": "AMP: the queue elements and indices that frames cross (both formats of spsc, or amp-2026)",
    "notification": "AMP out-of-band notification: the tx, rx and mask words",
    "handshake": "AMP 2026: the INIT -> READY -> RUN handshake and laying the elements out",
    "virtqueue": "AMP: the split rings (descriptors, avail and used rings) of every device on the bus, and the "
                 "driver's copies into the carve-out when a device's sharing has `bounce`",
    "shared": "Xen and FF-A: everything the bus touches in shared memory (page or RX/TX buffers or FIFO "
              "rings, and the split rings), not told apart",
    "payload": "payload copies through the shared buffers (`data: copy`), on the side that copies",
}
"""The regions a bus counts (`regions.<region>.<side>`), each with `bytes_read`, `bytes_written`, `cache_lines`."""


def accounting(output: SimOutput) -> dict:
    """summary.json's `accounting`: `{"buses": {bus: {"totals", "per_request", "regions", "devices"}}}`."""
    bus_names = list(output.events.buses.names)
    completed = _completed_by_device(output)
    bus_completed = dict.fromkeys(bus_names, 0)
    on_bus: dict[str, list[str]] = {bus: [] for bus in bus_names}
    for device, requests in sorted(completed.items()):
        if _bus_of(device) in on_bus:
            bus_completed[_bus_of(device)] += requests
            on_bus[_bus_of(device)].append(device)
    cpu_ns = _cpu_by_bus(output.processors, bus_completed)
    totals = {bus: dict.fromkeys(QUANTITIES, 0) for bus in bus_names}
    for name, counts in output.counters.items():  # a component belongs to the bus one of its name's segments is
        segments = name.split(".")
        bus = next((segment for segment in segments if segment in totals), None)
        if bus is None or name == bus:
            continue
        if "doorbell" in segments:
            totals[bus]["doorbells"] += counts.get("rung", 0) + counts.get("coalesced", 0)
            totals[bus]["interrupts"] += counts.get("delivered", 0)
        elif "frames" in counts:
            totals[bus]["frames"] += counts["frames"]
            totals[bus]["polls"] += counts.get("polls", 0)
    buses = {}
    for bus in bus_names:
        own = output.counters.get(bus, {})
        regions = _regions(own)
        mine = totals[bus]
        for sides in regions.values():
            for traffic in sides.values():
                for name in TRAFFIC:
                    mine[name] += traffic[name]
        mine["polls"] += own.get("event_polls", 0)  # FF-A: the driver's FFA_EVENT_POLL calls
        mine["cpu_ns"] = cpu_ns.get(bus, 0)
        requests = bus_completed[bus]
        devices = on_bus[bus]
        buses[bus] = {"totals": mine, "per_request": _per_request(mine, requests), "regions": regions,
                      "devices": {device: _device_share(mine, completed[device], requests, len(devices))
                                  for device in devices}}
    return {"buses": buses}


def accounting_table(summary: dict):
    """The accounting of a summary (summary.json) as one long table (a pandas DataFrame): a row per bus,
    device or region and side, and quantity, with its `total` over the run and `per_request`. Bus rows have no
    `device`, `region` or `side`; device rows no `region` or `side`; region rows count bytes and lines only."""
    import pandas as pd

    completed: dict[str, int] = {}
    for counts in summary.get("workloads", {}).values():
        bus = _bus_of(counts.get("device", ""))
        completed[bus] = completed.get(bus, 0) + counts.get("completed_by_end", counts.get("completed", 0))
    rows = []
    for bus, entry in summary.get("accounting", {}).get("buses", {}).items():
        scopes = [(None, entry), *entry.get("devices", {}).items()]
        for device, scope in scopes:
            rows += [{"bus": bus, "device": device, "region": None, "side": None, "quantity": quantity,
                      "total": total, "per_request": scope["per_request"].get(quantity)}
                     for quantity, total in scope["totals"].items()]
        requests = completed.get(bus, 0)
        for region, sides in entry.get("regions", {}).items():
            for side, traffic in sides.items():
                rows += [{"bus": bus, "device": None, "region": region, "side": side, "quantity": quantity,
                          "total": total, "per_request": total / requests if requests else None}
                         for quantity, total in traffic.items()]
    return pd.DataFrame(rows, columns=["bus", "device", "region", "side", "quantity", "total", "per_request"])


def keys_table() -> str:
    """`accounting`'s keys as the Markdown table results/README.md shows (a test keeps the two equal)."""
    lines = ["| key | meaning |", "|---|---|"]
    lines += [f"| `{name}` | {meaning} |" for name, meaning in STRUCTURE.items()]
    lines += [f"| `{name}` | {meaning} |" for name, meaning in MEANINGS.items()]
    lines += [f"| region `{name}` | {meaning} |" for name, meaning in REGIONS.items()]
    return "\n".join(lines)


def _bus_of(device: str) -> str:
    """A device's dotted name starts with its bus."""
    return device.split(".", 1)[0]


def _completed_by_device(output: SimOutput) -> dict[str, int]:
    """Requests completed by the end, per device (dotted name), from its workloads."""
    completed: dict[str, int] = {}
    for counts in output.workloads.values():
        device = counts.get("device")
        if device is not None:
            completed[device] = completed.get(device, 0) + counts.get("completed_by_end", counts["completed"])
    return completed


def _regions(own: dict) -> dict:
    """`{region: {side: {bytes_read, bytes_written, cache_lines}}}` from a bus's `memory.<region>.<side>.*`
    counters, both sides always present."""
    regions: dict[str, dict] = {}
    for key, value in own.items():
        parts = key.split(".")
        if len(parts) != 4 or parts[0] != "memory" or parts[2] not in SIDES or parts[3] not in TRAFFIC:
            continue
        sides = regions.setdefault(parts[1], {side: dict.fromkeys(TRAFFIC, 0) for side in SIDES})
        sides[parts[2]][parts[3]] += value
    return regions


def _cpu_by_bus(processors: dict, bus_completed: dict[str, int]) -> dict[str, float]:
    """Work done on the processors, per bus: a processor named after a bus (its device side's core) is that
    bus's; any other (a driver's core, a domain's vCPUs) is shared out by the requests each bus completed,
    evenly when none completed any."""
    cpu = dict.fromkeys(bus_completed, 0)
    everyone = sum(bus_completed.values())
    for name, report in processors.items():
        busy = report.get("busy_ns", 0)
        owner = name.split(".", 1)[0]
        if owner in cpu:
            cpu[owner] += busy
            continue
        for bus, requests in bus_completed.items():
            cpu[bus] += busy * requests / everyone if everyone else busy / len(cpu)
    return cpu


def _per_request(totals: dict, requests: int) -> dict:
    return {quantity: value / requests if requests else None for quantity, value in totals.items()}


def _device_share(totals: dict, requests: int, bus_requests: int, devices: int) -> dict:
    """A device's part of its bus's totals: its share of the bus's completed requests (evenly when none)."""
    share = requests / bus_requests if bus_requests else 1 / devices
    mine = {quantity: value * share for quantity, value in totals.items()}
    return {"totals": mine, "per_request": _per_request(mine, requests)}
