"""Bus kinds as plug-ins: one folder each, one line each in `KINDS`.

A kind's folder holds its `buses:` spec and platform cost section (pydantic), its topology checks, its
SimPy plug-in and its sharing mechanism. The registry feeds the scenario schema (the `buses:` union, the
platform's cost sections, the doorbell kinds), the topology checks and platform provenance; the model
builder finds each plug-in through its spec. Importing this package loads no simulator.
"""

from __future__ import annotations

from vmsim.buses import amp, ffa, xen
from vmsim.buses.kind import BusKind

KINDS: dict[str, BusKind] = {}
_sealed = False


def register(kind: BusKind) -> None:
    """Add a bus kind. The scenario schema is built from the registry when `vmsim.scenario` is first
    imported, so a kind registered later could not be written in a scenario: that is refused."""
    if _sealed:
        raise RuntimeError(f"register bus kind {kind.name!r} before importing vmsim.scenario")
    if kind.name in KINDS:
        raise ValueError(f"bus kind {kind.name!r} is already registered")
    KINDS[kind.name] = kind


register(amp.KIND)
register(xen.KIND)
register(ffa.KIND)


def sealed() -> dict[str, BusKind]:
    """The registry, closed: the scenario schema calls this once, as it builds itself from the kinds."""
    global _sealed
    _sealed = True
    return KINDS


def doorbell_kinds() -> tuple[str, ...]:
    """Every notification kind the platform's `doorbells:` may name: the bus kinds' own, then `ideal`."""
    return (*(bell for kind in KINDS.values() for bell in kind.doorbell_kinds), "ideal")


__all__ = ["KINDS", "BusKind", "doorbell_kinds", "register", "sealed"]
