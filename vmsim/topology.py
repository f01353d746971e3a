"""The scenario as a graph (drivers -> buses -> devices <- workloads) and the checks that need it.

Nodes are component names (unique across drivers, buses, devices and workloads, which `problems`
enforces) with attributes `kind`, `name`, `index` (position in its scenario list) and `config`
(the pydantic model), plus a few per kind for plotting and summaries. An edge exists only where a
reference resolves, so "every device is reachable from its driver over a bus" is read off the graph.
Every check is one pass over the components: a 1,000-device scenario builds and checks in
milliseconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from functools import lru_cache

import networkx as nx

from vmsim.buses.problems import hint, unknown
from vmsim.errors import ScenarioError
from vmsim.scenario import no_effect
from vmsim.scenario.locations import KeyPath
from vmsim.scenario.models import KINDS, DeviceSpec, Scenario
from vmsim.scenario.trace import read_trace
from vmsim.schema import SideMemory
from vmsim.wire.memory import PAGE, pages

LAYERS = ("driver", "bus", "device", "workload")  # left to right in `draw`
COLUMN_TITLES = ("drivers", "buses", "devices", "workloads")
FEATURE_MESSAGES = ("GET_DEVICE_FEATURES", "SET_DRIVER_FEATURES")

Problem = tuple[KeyPath, str]


def build_graph(scenario: Scenario) -> nx.DiGraph:
    """One node per component; edges driver->bus, bus->device (with `dev_num`), workload->device."""
    graph = nx.DiGraph(name=scenario.name)
    for index, driver in enumerate(scenario.drivers):
        graph.add_node(
            driver.name, kind="driver", name=driver.name, index=index, config=driver, cpu=driver.cpu
        )
    for index, bus in enumerate(scenario.buses):
        graph.add_node(
            bus.name,
            kind="bus",
            name=bus.name,
            index=index,
            config=bus,
            bus_kind=bus.kind,
            layout=bus.layout,
            max_msg_size=bus.max_msg_size or bus.element_size,
        )
        if _is(graph, bus.driver, "driver"):
            graph.add_edge(bus.driver, bus.name)
    for index, device in enumerate(scenario.devices):
        graph.add_node(
            device.name,
            kind="device",
            name=device.name,
            index=index,
            config=device,
            device_kind=device.kind,
            dev_num=device.dev_num,
            queues=device.queues,
        )
        if _is(graph, device.bus, "bus"):
            graph.add_edge(device.bus, device.name, dev_num=device.dev_num)
    for index, workload in enumerate(scenario.workloads):
        graph.add_node(
            workload.name,
            kind="workload",
            name=workload.name,
            index=index,
            config=workload,
            arrivals=workload.arrivals.kind,
            vq=workload.vq,
        )
        if _is(graph, workload.device, "device"):
            graph.add_edge(workload.name, workload.device, vq=workload.vq)
    return graph


def problems(scenario: Scenario, graph: nx.DiGraph) -> list[Problem]:
    """Every topology problem as (key path, message), for the loader to place at file:line.

    Duplicate names make the graph ambiguous, so they are reported alone.
    """
    duplicates = list(_duplicate_names(scenario))
    if duplicates:
        return duplicates
    return [
        *_platform_references(scenario),
        *_reachability(scenario, graph),
        *_unique_dev_nums(scenario),
        *_one_device_cpu_per_bus(scenario),
        *_workload_targets(scenario, graph),
        *_traces_long_enough(scenario),
        *_frames_fit(scenario),
        *(problem for kind in KINDS.values() if kind.checks is not None
          for problem in kind.checks(scenario, largest_request)),
        *_sharing(scenario),
        *no_effect.problems(scenario),
    ]


@lru_cache(maxsize=64)
def largest_frame(layout: str, feature_bits: int) -> tuple[int, str]:
    """(bytes, message name) of the largest frame a driver and device exchange on `layout`.

    Fixed-size messages count whole. The feature messages carry all `feature_bits` in one frame
    (the driver asks for every block at once); other variable messages need one byte of payload,
    because the driver splits config reads into chunks that fit the bus (as Linux does) and
    EVENT_CONFIG falls back to length 0.
    """
    from vmsim.wire import get_layout

    needs = []
    for spec in get_layout(layout).messages:
        if spec.size is not None:
            needs.append((spec.size, spec.name))
        elif spec.name in FEATURE_MESSAGES:
            needs.append((spec.min_size + 4 * (feature_bits // 32), spec.name))
        else:
            needs.append((spec.min_size + 1, spec.name))
    return max(needs)


def draw(graph: nx.DiGraph, ax=None, *, max_labels: int = 40, colour_of=None):
    """Plot the topology in layers: drivers, buses, devices, workloads from left to right.

    Devices are ordered by bus so that edges barely cross; a layer with more than `max_labels`
    nodes is drawn without labels (a 1,000-device plot is read by shape, not by name). Each label gives
    the node's name and, smaller, its kind, below its marker (never over it). Buses that share a backend
    (a Xen backend domain, an FF-A partition) take that backend's colour (`colour_of(name)`, the figures'
    shared palette, when given), and the legend says how many share it: four DomUs served by one Dom0 show
    as four buses of one colour.
    """
    import matplotlib.pyplot as plt
    from matplotlib.transforms import ScaledTranslation

    if colour_of is None:
        colour_of = _one_colour
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 6))
    layers = _ordered_layers(graph)
    position = {}
    for column, kind in enumerate(LAYERS):
        names = layers[kind]
        for row, name in enumerate(names):
            position[name] = (column, 1.0 - (row + 0.5) / max(len(names), 1))
    colours = {"driver": "#4c72b0", "bus": "#dd8452", "device": "#55a868", "workload": "#8172b3"}
    backends = {name: _backend(graph.nodes[name]) for name in layers["bus"]}
    sharing = {backend: [bus for bus, of in backends.items() if of == backend] for backend in set(backends.values())}
    for kind in LAYERS:
        names = layers[kind]
        if not names:
            continue
        size = 600 if len(names) <= max_labels else max(20, 6000 // len(names))
        node_colours = [colour_of(backends[name]) if kind == "bus" and backends[name] else colours[kind]
                        for name in names]
        nx.draw_networkx_nodes(graph, position, nodelist=names, node_color=node_colours, node_size=size,
                               node_shape="s" if kind == "bus" else "o", label=kind, ax=ax)
        if len(names) > max_labels:
            continue
        below = ScaledTranslation(0, -(size ** 0.5 / 2 + 2) / 72, ax.figure.dpi_scale_trans)  # under the marker
        for name in names:
            x, y = position[name]
            ax.text(x, y, name, fontsize=8, ha="center", va="top", transform=ax.transData + below)
            detail = _detail(graph.nodes[name], backends.get(name), len(sharing.get(backends.get(name), ())))
            if detail:
                lower = ScaledTranslation(0, -(size ** 0.5 / 2 + 12) / 72, ax.figure.dpi_scale_trans)
                ax.text(x, y, detail, fontsize=6.5, color="#555555", ha="center", va="top",
                        transform=ax.transData + lower)
    for backend, buses in sorted(sharing.items(), key=lambda item: str(item[0])):
        if backend:
            ax.scatter([], [], marker="s", color=colour_of(backend),
                       label=f"backend {backend}: {len(buses)} bus{'es' if len(buses) > 1 else ''}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False, markerscale=0.5)
    nx.draw_networkx_edges(
        graph,
        position,
        edgelist=list(graph.edges),
        arrows=True,
        arrowsize=8,
        width=0.6,
        edge_color="#777777",
        ax=ax,
    )
    ax.set_xticks(range(len(LAYERS)), [f"{title} ({len(layers[kind])})" for title, kind in zip(COLUMN_TITLES, LAYERS)])
    ax.tick_params(
        axis="x", bottom=False, labelbottom=True
    )  # networkx hides tick labels; the columns need them
    ax.set_yticks([])
    ax.set_xlim(-0.5, len(LAYERS) - 0.5)
    ax.set_ylim(-0.12, 1.02)  # room for the labels under the lowest markers
    ax.set_title(f"topology: {graph.graph.get('name', '')}")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return ax


# --- checks -----------------------------------------------------------------------------------


def _duplicate_names(scenario: Scenario) -> Iterable[Problem]:
    first: dict[str, str] = {}
    for section in ("drivers", "buses", "devices", "workloads"):
        for index, item in enumerate(getattr(scenario, section)):
            if item.name in first:
                yield (
                    (section, index, "name"),
                    (
                        f"name {item.name!r} is already used by {first[item.name]}; "
                        "names must be unique across drivers, buses, devices and workloads"
                    ),
                )
            else:
                first[item.name] = f"{section}[{index}]"


def _platform_references(scenario: Scenario) -> Iterable[Problem]:
    platform = scenario.platform
    for section in ("drivers", "devices"):
        for index, item in enumerate(getattr(scenario, section)):
            if item.cpu is not None and item.cpu not in platform.cpus:
                yield (section, index, "cpu"), unknown("cpu kind", item.cpu, platform.cpus, platform.name)
            if item.software is not None and item.software not in platform.software:
                yield (section, index, "software"), unknown("software path", item.software, platform.software,
                                                            platform.name)
    for index, bus in enumerate(scenario.buses):
        memories = (
            [("memory", "driver"), ("memory", "device")]
            if isinstance(bus.memory, SideMemory)
            else [("memory",)]
        )
        for key in memories:
            name = bus.memory if len(key) == 1 else getattr(bus.memory, key[1])
            if name not in platform.memory:
                yield ("buses", index, *key), unknown("memory kind", name, platform.memory, platform.name)
        for key in KINDS[bus.kind].notifiers:
            name = getattr(bus, key, None)
            if name is not None and name not in platform.doorbells:
                yield (
                    ("buses", index, key),
                    unknown("doorbell kind", name, platform.doorbells, platform.name),
                )


def _reachability(scenario: Scenario, graph: nx.DiGraph) -> Iterable[Problem]:
    """A device is reachable when its bus exists and that bus has a driver (the edges exist)."""
    drivers = [driver.name for driver in scenario.drivers]
    buses = [bus.name for bus in scenario.buses]
    for index, bus in enumerate(scenario.buses):
        if not graph.has_edge(bus.driver, bus.name):
            yield ("buses", index, "driver"), f"no driver named {bus.driver!r}{hint(bus.driver, drivers)}"
    for index, device in enumerate(scenario.devices):
        if not (_is(graph, device.bus, "bus") and graph.has_edge(device.bus, device.name)):  # not a workload's edge
            yield ("devices", index, "bus"), f"no bus named {device.bus!r}{hint(device.bus, buses)}"


def _unique_dev_nums(scenario: Scenario) -> Iterable[Problem]:
    owner: dict[tuple[str, int], str] = {}
    for index, device in enumerate(scenario.devices):
        key = (device.bus, device.dev_num)
        if key in owner:
            yield (
                ("devices", index, "dev_num"),
                f"dev_num {device.dev_num} is already used on bus {device.bus!r} by device {owner[key]!r}",
            )
        else:
            owner[key] = device.name


def _one_device_cpu_per_bus(scenario: Scenario) -> Iterable[Problem]:
    """The device side of a bus runs on one core, so every device on a bus names the same `cpu` (or
    all name none): the bus charges the first device's cpu per frame. A cpu the platform does not
    define, or a bus that does not exist, is reported elsewhere and left out here."""
    buses = {bus.name for bus in scenario.buses}
    cpus = scenario.platform.cpus
    first: dict[str, DeviceSpec] = {}
    for index, device in enumerate(scenario.devices):
        if device.bus not in buses or (device.cpu is not None and device.cpu not in cpus):
            continue
        other = first.setdefault(device.bus, device)
        if device.cpu != other.cpu:
            yield (
                ("devices", index, "cpu"),
                (
                    f"device {device.name!r} names {_cpu(device.cpu)}, device {other.name!r} names "
                    f"{_cpu(other.cpu)}: the device side of bus {device.bus!r} runs on one core, so "
                    "every device on it names the same cpu"
                ),
            )


def _workload_targets(scenario: Scenario, graph: nx.DiGraph) -> Iterable[Problem]:
    devices = [device.name for device in scenario.devices]
    for index, workload in enumerate(scenario.workloads):
        if not graph.has_edge(workload.name, workload.device):
            yield (
                ("workloads", index, "device"),
                f"no device named {workload.device!r}{hint(workload.device, devices)}",
            )
            continue
        queues = graph.nodes[workload.device]["queues"]
        if workload.vq >= queues:
            yield (
                ("workloads", index, "vq"),
                (
                    f"vq {workload.vq} does not exist: device {workload.device!r} has {queues} queue(s), "
                    f"vq 0..{queues - 1}"
                ),
            )


def _frames_fit(scenario: Scenario) -> Iterable[Problem]:
    """The largest frame of the bus's layout (for each device's feature count) fits one element."""
    limits: dict[str, tuple[int, int]] = {}
    for index, bus in enumerate(scenario.buses):
        element_size = getattr(bus, "element_size", None)  # FF-A buses have no queue element
        limit_key = "max_msg_size" if bus.max_msg_size is not None else "element_size"
        limit = bus.max_msg_size or element_size
        if bus.max_msg_size is not None and element_size is not None and bus.max_msg_size > element_size:
            yield (
                ("buses", index, "max_msg_size"),
                (
                    f"{bus.max_msg_size} bytes exceeds element_size {bus.element_size}: "
                    "a frame must fit one element"
                ),
            )
            continue
        size, name = largest_frame(bus.layout, 32)
        if size > limit:
            yield (
                ("buses", index, limit_key),
                (
                    f"{limit} bytes is too small for {name} ({size} bytes) of layout {bus.layout}; "
                    f"use at least {size}"
                ),
            )
            continue
        limits[bus.name] = (limit, index)
    for index, device in enumerate(scenario.devices):
        if device.bus not in limits:
            continue
        limit, bus_index = limits[device.bus]
        size, name = largest_frame(scenario.buses[bus_index].layout, device.feature_bits)
        if size > limit:
            yield (
                ("devices", index, "feature_bits"),
                (
                    f"{device.feature_bits} feature bits make {name} {size} bytes, more than bus "
                    f"{device.bus!r} carries ({limit} bytes)"
                ),
            )


def _sharing(scenario: Scenario) -> Iterable[Problem]:
    """Memory shared under a policy: the bus can carry the share messages, the policy's options fit together,
    the heap holds what the policy asks of it, `buffers:` go with a device that shares, and a device is reset
    or removed only once it is there."""

    buses = {bus.name: bus for bus in scenario.buses}
    devices = {device.name: (index, device) for index, device in enumerate(scenario.devices)}
    sizes: dict[str, list[int]] = {}
    for index, workload in enumerate(scenario.workloads):
        found = devices.get(workload.device)
        if found is None:
            continue
        device = found[1]
        sizes.setdefault(device.name, []).append(largest_request(workload)[0])
        if workload.buffers is None:
            continue
        if device.sharing is None:
            yield ("workloads", index, "buffers"), (f"device {device.name!r} has no `sharing:`: its buffers are "
                                                   "not shared under a policy, so they have no lifetime to set")
        elif device.sharing.release == "device" and (workload.buffers.uses > 1 or workload.buffers.lifetime):
            yield ("workloads", index, "buffers"), ("with `release: device` the device gives each buffer back "
                                                   "once consumed: a buffer carries one request (uses 1, no lifetime)")
    for name, (index, device) in devices.items():
        for key in ("removed_at", "reset_at"):
            when = getattr(device, key)
            if when is not None and device.added_at is not None and when <= device.added_at:
                yield ("devices", index, key), f"{when} ns is not after the device appears (added_at {device.added_at} ns)"
        sharing, bus = device.sharing, buses.get(device.bus)
        if sharing is None or bus is None:
            continue
        where = ("devices", index, "sharing")
        share_checks = KINDS[bus.kind].share_checks
        for key, message in share_checks(bus, sharing) if share_checks is not None else ():
            yield (*where, *key), message
        if sharing.policy == "pool" and sharing.release != "eager":
            yield (*where, "release"), ("a pool stays shared until the run ends: `release` applies to the other "
                                        "policies (leave it eager)")
        largest = max(sizes.get(name, [PAGE]))
        count = sharing.pool if sharing.policy == "pool" else sharing.batch
        regions = -(-count // sharing.batch)
        needed = regions * pages(largest * min(count, sharing.batch)) * PAGE
        if needed > sharing.heap:
            what = f"a pool of {count}" if sharing.policy == "pool" else f"a batch of {count}"
            yield (*where, "heap"), (f"{sharing.heap} bytes do not hold {what} buffers of {largest} bytes "
                                     f"({needed} bytes in whole pages)")


def _traces_long_enough(scenario: Scenario) -> Iterable[Problem]:
    """A run that ends on request counts needs each trace to hold as many arrivals as its workload asks for:
    a shorter one leaves the model waiting for arrivals that never come."""
    if scenario.duration is not None:
        return
    for index, workload in enumerate(scenario.workloads):
        if workload.arrivals.kind != "trace" or workload.requests is None:
            continue
        try:
            rows = len(read_trace(workload.arrivals.file).times_ns)
        except ScenarioError:  # the loader reports it at the workload's `file:`
            continue
        if workload.requests > rows:
            yield ("workloads", index, "requests"), (
                f"{workload.requests} requests, but the trace replayed has {rows} rows and the scenario has no "
                f"duration, so the run would never end: ask for at most {rows}, or give `duration`")


def largest_request(workload) -> tuple[int, tuple[str, ...]]:
    """The largest request a workload makes, and the key that sets it: the largest size of the trace it
    replays (`arrivals.file`) when the trace has sizes, else the largest its size distribution draws."""
    from vmsim.sim.sharing import largest_size

    if workload.arrivals.kind == "trace":
        try:
            sizes = read_trace(workload.arrivals.file).sizes
        except ScenarioError:  # the loader reports it at the workload's `file:`
            sizes = None
        if sizes:
            return max(sizes), ("arrivals", "file")
    return largest_size(workload.size), ("size",)


# --- helpers ----------------------------------------------------------------------------------


def _cpu(name: str | None) -> str:
    return "no cpu" if name is None else f"cpu {name!r}"


def _is(graph: nx.DiGraph, name: str, kind: str) -> bool:
    return name in graph and graph.nodes[name]["kind"] == kind


def _one_colour(_name: str) -> str:
    return "#dd8452"


def _backend(node: dict) -> str | None:
    """Who serves a bus's devices when several buses may share it: a Xen backend domain, an FF-A partition."""
    config = node.get("config")
    return getattr(config, "backend", None) or getattr(config, "partition", None)


def _detail(node: dict, backend: str | None, sharers: int) -> str:
    """The second line of a node's label: what kind it is, and for a bus where its devices are served."""
    kind = node["kind"]
    if kind == "bus":
        text = f"{node.get('bus_kind', '')}, {node.get('layout', '')}".strip(", ")
        frontend = getattr(node.get("config"), "frontend", None)
        if backend:
            text += f"\n{frontend} → {backend}" if frontend else f"\n→ {backend}"
            if sharers > 1:
                text += f" (shared by {sharers})"
        return text
    if kind == "device":
        return str(node.get("device_kind", ""))
    if kind == "driver":
        return f"on {node['cpu']}" if node.get("cpu") else ""
    return ""


def _ordered_layers(graph: nx.DiGraph) -> dict[str, list[str]]:
    """Nodes per layer, ordered so that each bus sits near its driver and each device near its bus."""
    layers: dict[str, list[str]] = {kind: [] for kind in LAYERS}
    for name, data in sorted(graph.nodes(data=True), key=lambda item: item[1]["index"]):
        layers[data["kind"]].append(name)
    rank = {name: row for row, name in enumerate(layers["driver"])}
    for above, kind in itertools.pairwise(LAYERS):
        parent = {name: _parent(graph, name, kind, above) for name in layers[kind]}
        layers[kind].sort(key=lambda name: (rank.get(parent[name], len(rank)), graph.nodes[name]["index"]))
        rank = {name: row for row, name in enumerate(layers[kind])}
    return layers


def _parent(graph: nx.DiGraph, name: str, kind: str, above: str) -> str | None:
    """The node a layer hangs from: a bus's driver, a device's bus, a workload's device."""
    neighbours = graph.successors(name) if kind == "workload" else graph.predecessors(name)
    return next((n for n in neighbours if graph.nodes[n]["kind"] == above), None)
