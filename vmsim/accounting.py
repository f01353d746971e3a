"""What each request cost, counted: bytes, cache lines, doorbells, interrupts, polls, frames and CPU time
per bus and per device, and the bytes per memory region and side (summary.json's `accounting`).

The simulator counts as it goes, at no cost to its schedule: every shared-memory access counts its bytes and
the cache lines it is charged for in its bus's counters (`memory.<region>.<side>.<name>`, see
`vmsim.sim.costs.MemoryCost`); doorbells, queues and processors keep their own counters, and the model
copies them all once when the warm-up ends (`SimOutput.at_warmup`). This module only adds them up. Totals
cover the whole run, start-up included; the window covers what the latency and throughput cover, from the
warm-up's end to the end of the run, and per-request figures divide it by the requests completed in it
(summary.json's `requests_in_window`), so that the start-up's handshakes and device initialisation do not
weigh on them more at a low load than at a high one. Devices on one bus share its queues, its memory and its
doorbells, and a driver's core may serve several buses: what the model counts per bus is given to each device
(and a core's time to each bus) in proportion to the requests it completed (docs/queue-formats.md says what
each format touches).
"""

from __future__ import annotations

from vmsim.sim.costs import TRAFFIC
from vmsim.sim.output import SimOutput

STRUCTURE = {
    "buses.<bus>.totals": "the bus's figures over the whole run, start-up included (below)",
    "buses.<bus>.window": "the bus's figures over the measured window, from `warmup_ns` to `sim_time_ns` (the "
                          "figures at the end less those at the warm-up's end): `totals` when `warmup_ns` is 0",
    "buses.<bus>.requests_in_window": "the bus's requests completed in the window (as `requests_in_window` "
                                      "counts them)",
    "buses.<bus>.per_request": "`window` over `requests_in_window`: the steady state's cost of a request, "
                               "start-up left out; null when none completed in the window",
    "buses.<bus>.regions.<region>.<side>": "`bytes_read`, `bytes_written`, `cache_lines` of one region (below) "
                                           "seen from the `driver` or the `device` side, over the whole run",
    "buses.<bus>.regions_in_window.<region>.<side>": "the same over the window",
    "buses.<bus>.devices.<device>": "`totals`, `window`, `requests_in_window` and `per_request` of one device "
                                    "(dotted name): the bus's figures in proportion to the requests it "
                                    "completed (in the run, in the window), as the devices of a bus share "
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
              "bus completed (in the run for `totals`, in the window for `window`)",
}
"""What each figure of `totals`, `window` and `per_request` counts (results/README.md shows them: `keys_table`)."""
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
    """summary.json's `accounting`: `{"buses": {bus: {"totals", "window", "requests_in_window", "per_request",
    "regions", "regions_in_window", "devices"}}}`."""
    bus_names = list(output.events.buses.names)
    at_warmup = output.at_warmup
    completed, in_window = completed_by_device(output)
    on_bus: dict[str, list[str]] = {bus: [] for bus in bus_names}
    for device in sorted(completed):
        if _bus_of(device) in on_bus:
            on_bus[_bus_of(device)].append(device)
    bus_completed = {bus: sum(completed[device] for device in devices) for bus, devices in on_bus.items()}
    bus_in_window = {bus: sum(in_window[device] for device in devices) for bus, devices in on_bus.items()}
    busy = {name: report.get("busy_ns", 0) for name, report in output.processors.items()}
    busy_before = {name: report.get("busy_ns", 0) for name, report in at_warmup.get("processors", {}).items()}
    cpu_ns = _cpu_by_bus(busy, bus_completed)
    cpu_ns_in_window = _cpu_by_bus({name: ns - busy_before.get(name, 0) for name, ns in busy.items()}, bus_in_window)
    counted = _counted(output.counters, bus_names)
    counted_before = _counted(at_warmup.get("counters", {}), bus_names)
    buses = {}
    for bus in bus_names:
        (totals, regions), (totals_before, regions_before) = counted[bus], counted_before[bus]
        totals["cpu_ns"] = cpu_ns[bus]
        window = {quantity: value - totals_before[quantity] for quantity, value in totals.items()}
        window["cpu_ns"] = cpu_ns_in_window[bus]  # shared out by the window's requests, not subtracted
        requests, devices = bus_in_window[bus], on_bus[bus]
        buses[bus] = {
            "totals": totals, "window": window, "requests_in_window": requests,
            "per_request": _per_request(window, requests), "regions": regions,
            "regions_in_window": _regions_since(regions, regions_before),
            "devices": {device: _device_share(totals, window, completed[device], in_window[device],
                                              bus_completed[bus], requests, len(devices)) for device in devices}}
    return {"buses": buses}


def accounting_table(summary: dict):
    """The accounting of a summary (summary.json) as one long table (a pandas DataFrame): a row per bus,
    device or region and side, and quantity, with its `total` over the run, its `window` total (from the
    warm-up's end) and `per_request` (the window's, per request completed in it). Bus rows have no `device`,
    `region` or `side`; device rows no `region` or `side`; region rows count bytes and lines only. A summary
    written before the window was counted has no `window` and no per-request figure for its regions."""
    import pandas as pd

    rows = []
    for bus, entry in summary.get("accounting", {}).get("buses", {}).items():
        scopes = [(None, entry), *entry.get("devices", {}).items()]
        for device, scope in scopes:
            window = scope.get("window", {})
            rows += [{"bus": bus, "device": device, "region": None, "side": None, "quantity": quantity,
                      "total": total, "window": window.get(quantity), "per_request": scope["per_request"].get(quantity)}
                     for quantity, total in scope["totals"].items()]
        requests = entry.get("requests_in_window")
        regions_in_window = entry.get("regions_in_window", {})
        for region, sides in entry.get("regions", {}).items():
            for side, traffic in sides.items():
                window = regions_in_window.get(region, {}).get(side, {})
                rows += [{"bus": bus, "device": None, "region": region, "side": side, "quantity": quantity,
                          "total": total, "window": window.get(quantity),
                          "per_request": window[quantity] / requests if requests and quantity in window else None}
                         for quantity, total in traffic.items()]
    return pd.DataFrame(rows, columns=["bus", "device", "region", "side", "quantity", "total", "window",
                                       "per_request"])


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


def completed_by_device(output: SimOutput) -> tuple[dict[str, int], dict[str, int]]:
    """Per device (dotted name), the requests completed by the run's end, and those of them completed in the
    measured window (after the warm-up's copy of the counts)."""
    completed = _completed_by_device(output.workloads, {name: counts.get("completed_by_end", counts["completed"])
                                                        for name, counts in output.workloads.items()})
    before = _completed_by_device(output.workloads, output.at_warmup.get("completed", {}))
    return completed, {device: requests - before.get(device, 0) for device, requests in completed.items()}


def _completed_by_device(workloads: dict, completed: dict[str, int]) -> dict[str, int]:
    """Per device (dotted name), the requests its workloads completed, from `completed` per workload."""
    by_device: dict[str, int] = {}
    for name, counts in workloads.items():
        device = counts.get("device")
        if device is not None:
            by_device[device] = by_device.get(device, 0) + completed.get(name, 0)
    return by_device


def _counted(counters: dict, bus_names: list[str]) -> dict[str, tuple[dict, dict]]:
    """Per bus, (its figures but `cpu_ns`, its `regions`) from counters as they stood at one moment: a
    component belongs to the bus one of its name's segments is."""
    totals = {bus: dict.fromkeys(QUANTITIES, 0) for bus in bus_names}
    for name, counts in counters.items():
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
    counted = {}
    for bus in bus_names:
        own = counters.get(bus, {})
        regions = _regions(own)
        mine = totals[bus]
        for sides in regions.values():
            for traffic in sides.values():
                for name in TRAFFIC:
                    mine[name] += traffic[name]
        mine["polls"] += own.get("event_polls", 0)  # FF-A: the driver's FFA_EVENT_POLL calls
        counted[bus] = (mine, regions)
    return counted


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


def _regions_since(regions: dict, before: dict) -> dict:
    """`regions` less the `before` taken earlier (a region the bus had not touched yet counts from zero)."""
    return {region: {side: {name: value - before.get(region, {}).get(side, {}).get(name, 0)
                            for name, value in traffic.items()} for side, traffic in sides.items()}
            for region, sides in regions.items()}


def _cpu_by_bus(busy: dict[str, float], bus_completed: dict[str, int]) -> dict[str, float]:
    """Work done on the processors (`busy` ns per processor), per bus: a processor named after a bus (its
    device side's core) is that bus's; any other (a driver's core, a domain's vCPUs) is shared out by the
    requests each bus completed, evenly when none completed any."""
    cpu = dict.fromkeys(bus_completed, 0)
    everyone = sum(bus_completed.values())
    for name, ns in busy.items():
        owner = name.split(".", 1)[0]
        if owner in cpu:
            cpu[owner] += ns
            continue
        for bus, requests in bus_completed.items():
            cpu[bus] += ns * requests / everyone if everyone else ns / len(cpu)
    return cpu


def _per_request(totals: dict, requests: int) -> dict:
    return {quantity: value / requests if requests else None for quantity, value in totals.items()}


def _device_share(totals: dict, window: dict, completed: int, in_window: int, bus_completed: int,
                  bus_in_window: int, devices: int) -> dict:
    """A device's part of its bus's figures: of the run's totals, its share of the bus's completed requests;
    of the window's, its share of those completed in the window (evenly when none)."""
    share = completed / bus_completed if bus_completed else 1 / devices
    window_share = in_window / bus_in_window if bus_in_window else 1 / devices
    mine = {quantity: value * window_share for quantity, value in window.items()}
    return {"totals": {quantity: value * share for quantity, value in totals.items()}, "window": mine,
            "requests_in_window": in_window, "per_request": _per_request(mine, in_window)}
