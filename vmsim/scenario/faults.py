"""The scenario's `faults:` section: what goes wrong on purpose, where and when (docs/faults.md).

Each fault names its `kind`, the component it strikes (`target`, a dotted component name as the counters
and the event log spell it), a time window (`start`, `end`) and a `probability` per chance it gets (each
ring of a doorbell, each frame through a bus direction). The draws come from a random stream of the
target's own (`<target>.faults.<kind>`), so adding a fault never shifts another component's draws. The
model (`vmsim.sim.faults`) checks that each target exists once the topology is built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vmsim.schema import Strict, TimeNs

FaultKind = Literal["doorbell-lost", "doorbell-delayed", "frame-dropped", "frame-corrupted", "peer-silent",
                    "hot-unplug"]


class FaultSpec(Strict):
    """One injected fault.

    doorbell-lost / doorbell-delayed: target a doorbell (`amp0.to_device.doorbell`, `ffa0.to_driver.doorbell`);
    a ring is dropped, or delivered `delay` late. frame-dropped / frame-corrupted / peer-silent: target a
    direction of a bus (`amp0.to_device`, `xen0.to_driver`); a frame vanishes, arrives with a header its
    receiver's decoder rejects, or is taken by a receiver that ignores everything in the window (a peer
    that stopped answering). hot-unplug: target a device (`amp0.blk0`), removed at `start` whatever it
    is doing.
    """

    kind: FaultKind
    target: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    start: TimeNs = 0
    end: TimeNs | None = None
    probability: float = Field(default=1.0, gt=0, le=1)
    delay: TimeNs = 0

    @model_validator(mode="after")
    def _fits_its_kind(self):
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"`end` ({self.end} ns) must come after `start` ({self.start} ns)")
        if self.kind == "doorbell-delayed" and not self.delay:
            raise ValueError("a doorbell-delayed fault needs `delay` (how late the ring is delivered)")
        if self.kind != "doorbell-delayed" and self.delay:
            raise ValueError(f"`delay` applies to doorbell-delayed faults only, not {self.kind}")
        if self.kind == "peer-silent" and self.end is None:
            raise ValueError("a peer-silent fault needs `end`: the window in which the peer ignores every frame")
        if self.kind == "hot-unplug" and (self.end is not None or self.probability != 1):
            raise ValueError("a hot-unplug fault happens once, at `start`: give neither `end` nor `probability`")
        return self
