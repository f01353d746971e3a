"""Xen domains and buses: what the scenario must hold for the Xen plug-in to connect its buses."""

from __future__ import annotations

from collections.abc import Iterable

from vmsim.buses.problems import Problem, hint, share_layout
from vmsim.buses.xen.spec import XEN
from vmsim.wire.memory import PAGE, pages
from vmsim.wire.spsc import Spsc2024Queue, Spsc2025Queue


def problems(scenario, largest_request) -> Iterable[Problem]:
    """Xen domains and buses: domains exist and are unique, the shared page holds both queues, the
    notifications are event channels, a foreign mapping has a privileged device model, and a buffer
    fits the grant directory."""
    domains: dict[str, object] = {}
    for index, domain in enumerate(scenario.domains):
        if domain.name == XEN or domain.name in domains:
            taken = "the hypervisor's own name" if domain.name == XEN else "already used by another domain"
            yield ("domains", index, "name"), f"domain name {domain.name!r} is {taken}"
        domains.setdefault(domain.name, domain)
    privileged = [index for index, domain in enumerate(scenario.domains) if domain.kind == "dom0"]
    for index in privileged[1:]:
        yield ("domains", index, "kind"), "a host has one dom0; make this a driver domain (domd) or a domu"
    slots_for = {"spsc-2024": Spsc2024Queue.slots_for, "spsc-2025": Spsc2025Queue.slots_for}
    directory_pages: dict[str, int] = {}
    for index, bus in enumerate(scenario.buses):
        if bus.kind != "xen":
            continue
        for key, choices in (("frontend", [XEN, *domains]), ("backend", list(domains))):
            name = getattr(bus, key)
            if name not in choices:
                yield ("buses", index, key), f"no domain named {name!r}{hint(name, choices)} ({declare(key)})"
        if bus.frontend == bus.backend:
            yield ("buses", index, "backend"), f"domain {bus.backend!r} is already the bus's frontend"
        backend = domains.get(bus.backend)
        if bus.shared_page == "foreign" and backend is not None and backend.kind != "dom0":
            message = (f"a foreign mapping needs a privileged device model: backend {bus.backend!r} is a "
                       f"{backend.kind}, not dom0 (or share the page by grant)")
            yield ("buses", index, "shared_page"), message
        slots = slots_for[bus.queue_format](bus.queue_bytes)
        if 2 * bus.queue_bytes > PAGE:
            message = (f"two queues of {bus.queue_bytes} bytes do not fit the {PAGE}-byte shared page "
                       f"(at most {PAGE // 2} each)")
            yield ("buses", index, "queue_bytes"), message
        elif slots < 2:
            message = f"a {bus.queue_format} queue of {bus.queue_bytes} bytes has {max(slots, 0)} slots, not 2 or more"
            yield ("buses", index, "queue_bytes"), message
        for key in ("doorbell", "doorbell_to_driver"):
            bell = scenario.platform.doorbells.get(getattr(bus, key))
            if bell is not None and bell.kind != "evtchn":
                message = (f"doorbell {getattr(bus, key)!r} has kind {bell.kind}; a xen bus notifies by event "
                           "channel (kind evtchn)")
                yield ("buses", index, key), message
        if bus.grants == "directory":
            directory_pages[bus.name] = bus.directory_pages
    on_bus = {device.name: device.bus for device in scenario.devices}
    for index, workload in enumerate(scenario.workloads):
        limit = directory_pages.get(on_bus.get(workload.device))
        largest, key = largest_request(workload)
        if limit is not None and pages(largest) > limit:
            message = (f"a {largest}-byte buffer spans {pages(largest)} pages, more than the {limit} of its "
                       "bus's grant directory (directory_pages)")
            yield ("workloads", index, *key), message


def declare(key: str) -> str:
    if key == "frontend":
        return "declare it under domains:, or use xen for the hypervisor's proxy"
    return "declare it under domains:; the device side runs in a domain"


def share_checks(bus, sharing) -> Iterable[tuple[tuple, str]]:
    """Regions are granted and mapped, announced by vmsim-share messages; there is no carve-out to bounce in."""
    yield from share_layout(bus)
    if sharing.bounce:
        yield ("bounce",), f"bounce buffers are for an AMP carve-out; bus {bus.name!r} is {bus.kind}"
