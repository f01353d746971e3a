"""Settings that do nothing where they stand are scenario errors at their key.

A user who writes `linger: 5 ms` under `release: eager` expects the region to linger and gets numbers that
never moved; a sweep over it draws a flat line and a wrong conclusion. Each rule here names a setting given
a value other than its default in a place where the model never reads it, and says why in one line. A
setting left at its default is never reported, so a resolved config (every field written out) loads back.
The bus kinds' own rules of this sort live with their checks (`vmsim.buses.amp.checks`).
"""

from __future__ import annotations

from collections.abc import Iterable

from vmsim.scenario.models import Scenario
from vmsim.units import format_ns

Problem = tuple[tuple, str]


def problems(scenario: Scenario) -> Iterable[Problem]:
    """Every setting of `scenario` that has no effect where it stands, as (key path, message)."""
    yield from _sharing(scenario)
    yield from _buses(scenario)
    yield from _after_the_end(scenario)


def _changed(spec, key: str) -> bool:
    """Whether `spec.key` differs from the field's default: only a value the user chose can mislead them."""
    field = type(spec).model_fields[key]
    default = field.default_factory() if field.default_factory is not None else field.default
    return getattr(spec, key) != default


def _sharing(scenario: Scenario) -> Iterable[Problem]:
    for index, device in enumerate(scenario.devices):
        sharing = device.sharing
        if sharing is None:
            continue
        if sharing.policy != "pool" and _changed(sharing, "pool"):
            yield (("devices", index, "sharing", "pool"),
                   (f"`pool` is how many buffers `policy: pool` shares up front; `policy: {sharing.policy}` never "
                   "reads it, so it has no effect (drop it, or use policy: pool)"))
        if sharing.release != "lazy" and _changed(sharing, "linger"):
            yield (("devices", index, "sharing", "linger"),
                   (f"`linger` is how long `release: lazy` keeps a retired region shared; `release: {sharing.release}` "
                   "never keeps one, so it has no effect (drop it, or use release: lazy)"))


def _buses(scenario: Scenario) -> Iterable[Problem]:
    for index, bus in enumerate(scenario.buses):
        if bus.kind == "xen" and bus.grants != "directory" and _changed(bus, "directory_pages"):
            yield (("buses", index, "directory_pages"),
                   (f"`directory_pages` sizes the grant directory of `grants: directory`; `grants: {bus.grants}` has "
                   "none, so it has no effect (drop it, or use grants: directory)"))
        if bus.kind != "ffa":
            continue
        if bus.method != "fifo" and _changed(bus, "fifo_size"):
            yield (("buses", index, "fifo_size"),
                   (f"`fifo_size` sizes the FIFO region of `method: fifo`; a {bus.method} bus shares none, so it has "
                   "no effect (drop it, or use method: fifo)"))
        if bus.layout == "ffa-2025" and _changed(bus, "poll_interval"):
            yield (("buses", index, "poll_interval"),
                   ("an ffa-2025 bus has no EVENT_POLL mode (device events arrive as indirect messages), so "
                   "`poll_interval` has no effect (drop it)"))


def _after_the_end(scenario: Scenario) -> Iterable[Problem]:
    """Times after the run's end: the run stops before they come."""
    end = scenario.duration
    if end is None:
        return
    for index, workload in enumerate(scenario.workloads):
        if workload.start > end:
            yield (("workloads", index, "start"),
                   (f"the workload starts at {format_ns(workload.start)}, after the run ends "
                   f"(duration {format_ns(end)}): it submits nothing (start it earlier, or lengthen the run)"))
    for index, device in enumerate(scenario.devices):
        for key in ("removed_at", "reset_at"):
            at = getattr(device, key)
            if at is not None and at > end:
                yield (("devices", index, key),
                       (f"{format_ns(at)} is after the run ends (duration {format_ns(end)}): it never happens "
                       "(drop it, or lengthen the run)"))
