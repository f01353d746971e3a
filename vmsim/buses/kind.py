"""What a bus kind declares to the rest of vmsim: one `BusKind` per folder under `vmsim/buses/`.

Importing a kind's folder loads its spec (pydantic) and its topology checks only; its simulator plug-in
(SimPy) is named by the spec's `plugin` (a class, or "module:Class") and imported when a model is built,
so validating a scenario never loads the simulator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vmsim.buses.problems import Problem

Checks = Callable[..., Iterable[Problem]]
"""`checks(scenario, largest_request)`: every problem of the kind's buses in a scenario, as (key path,
message); `largest_request(workload)` gives (bytes, key) of the largest request a workload makes."""
ShareChecks = Callable[..., Iterable[tuple[tuple, str]]]
"""`share_checks(bus, sharing)`: what keeps memory shared under a policy off this bus, as (key under the
device's `sharing`, message)."""


@dataclass(frozen=True)
class BusKind:
    """A bus kind: its `buses:` entry, what else of the platform it reads, and its checks.

    `spec` is the pydantic model of one `buses:` entry: `kind: Literal[name]`, plus `name`, `driver`, `layout`,
    `max_msg_size`, `memory`, and a `plugin` class attribute naming its simulator plug-in (a `vmsim.sim.bus.Bus`
    with a `build(sim, spec, context)` class method). `costs` is the model of its platform section
    (`platform.<name>`), if it has one. `doorbell_kinds` are the notification kinds it brings to the
    platform's `doorbells:`; `notifiers` the keys of its entry that name one of those doorbells.
    """

    name: str
    spec: type
    costs: type | None = None
    doorbell_kinds: tuple[str, ...] = ()
    notifiers: tuple[str, ...] = ("doorbell", "doorbell_to_driver")
    checks: Checks | None = None
    share_checks: ShareChecks | None = None
