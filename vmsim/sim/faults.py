"""Injected faults at run time: the scenario's `faults:` (`vmsim.scenario.faults`) struck where they aim.

A component that can suffer a fault asks the run's `FaultPlan` for the faults aimed at it when it is built
(`faults_on`): a doorbell for lost and delayed rings, a bus direction for dropped, corrupted and ignored
frames; hot-unplug is armed on the device itself. Without a `faults:` section nothing is asked and nothing
is drawn, so runs without faults are unchanged to the byte.

What a fault did is counted in the `faults` counters: `injected.<kind>` each time one struck, `lost` what is
still missing at the end and `recovered` what came through after all. A lost ring is recovered by the
doorbell's next delivery (its handler drains what the lost one announced); a dropped, corrupted or ignored
frame by a later frame of the same message and device through the same direction (a retried request, the
next event carrying the same news). Each strike is also a `fault.<kind>` mark row on the target, each
recovery a `fault.recovered` row, so the event log shows when.
"""

from __future__ import annotations

from vmsim.errors import ScenarioError
from vmsim.sim.core import Component, Simulation

DOORBELL_KINDS = ("doorbell-lost", "doorbell-delayed")
FRAME_KINDS = ("frame-dropped", "frame-corrupted", "peer-silent")
RESERVED_TYPE_BIT = 0x80  # reserved in the type byte of every layout: each decoder rejects the frame at byte 0
LOSING = ("doorbell-lost", *FRAME_KINDS)


def faults_on(sim: Simulation, target: str, kinds) -> Aimed | None:
    """The faults of kinds `kinds` aimed at `target` in this run, or None (no plan, or none aimed)."""
    plan = getattr(sim, "faults", None)
    return None if plan is None else plan.aimed_at(target, kinds)


def corrupt(frame: bytes) -> bytes:
    """`frame` with a reserved bit of its type byte set, so that the receiver's decoder rejects it while the
    msg_id, device number and token a peer may answer ERROR with stay readable (virtio-msg carries no
    checksum: damage to a payload would pass unseen, which vmsim does not model)."""
    damaged = bytearray(frame)
    if damaged:
        damaged[0] |= RESERVED_TYPE_BIT
    return bytes(damaged)


class Fault:
    """One `faults:` entry with its own random stream."""

    def __init__(self, sim: Simulation, index: int, spec):
        self.index = index
        self.spec = spec
        self.kind = spec.kind
        self.env = sim.env
        self._rng = sim.rng(f"{spec.target}.faults.{spec.kind}") if spec.probability < 1 else None

    def strikes(self) -> bool:
        """Whether the fault strikes now: inside its window, and its draw says so."""
        now, spec = self.env.now, self.spec
        if now < spec.start or spec.end is not None and now >= spec.end:
            return False
        return self._rng is None or self._rng.random() < spec.probability


class Aimed:
    """The faults aimed at one component, and what they left missing there."""

    def __init__(self, plan: FaultPlan, target: str, faults: list[Fault]):
        self.plan = plan
        self.target = target
        self.faults = faults
        self.log_id = plan.sim.log.components(target)
        self.missing: dict = {}  # what a later success makes good -> how many strikes it recovers

    def strike(self, kind: str, dev_num: int = -1) -> Fault | None:
        """The first fault of `kind` that strikes now (counted and logged), or None."""
        for fault in self.faults:
            if fault.kind == kind and fault.strikes():
                self.plan.injected(self, fault, dev_num)
                return fault
        return None

    def lose(self, key=None) -> None:
        """A strike left something missing under `key` (a frame's message and device; None for a ring)."""
        self.missing[key] = self.missing.get(key, 0) + 1

    def made_good(self, key=None) -> None:
        """What was missing under `key` came through after all."""
        count = self.missing.pop(key, 0)
        if count:
            self.plan.recovered(self, count)

    def dropped(self, frame: bytes, dev_num: int) -> bool:
        """Whether a frame put on this direction is lost on the way (the sender believes it sent it)."""
        if self.strike("frame-dropped", dev_num) is None:
            return False
        self.lose(frame_key(frame))
        return True

    def received(self, frame: bytes) -> bytes | None:
        """The frame as this direction's receiver takes it, after the log recorded what was sent: None when
        a silent peer ignores it, damaged bytes for its decoder to reject, or as it was; a frame taken whole
        makes good the earlier strikes on its message and device."""
        key, dev_num = frame_key(frame), frame_dev_num(frame)
        if self.strike("peer-silent", dev_num) is not None:
            self.lose(key)
            return None
        if self.strike("frame-corrupted", dev_num) is not None:
            self.lose(key)
            return corrupt(frame)
        if self.missing:
            self.made_good(key)
        return frame


def frame_key(frame: bytes) -> bytes:
    """msg_id and dev_num: what a later frame must share to make good a lost one."""
    return bytes(frame[1:4])


def frame_dev_num(frame: bytes) -> int:
    return frame[2] | frame[3] << 8 if len(frame) > 3 else -1


class FaultPlan(Component):
    """The run's faults, handed to the components they aim at; counts what they did."""

    def __init__(self, sim: Simulation, specs):
        super().__init__(sim, "faults")
        self.faults = [Fault(sim, index, spec) for index, spec in enumerate(specs)]
        self.claimed: set[int] = set()
        self.counts = sim.counter("faults")
        self.counts.update({f"injected.{spec.kind}": 0 for spec in specs})
        self.counts.update(lost=0, recovered=0)
        log = sim.log
        self._log = log
        self._ev = {kind: log.events(f"fault.{kind}") for kind in {spec.kind for spec in specs}}
        self._ev_recovered = log.events("fault.recovered")

    def aimed_at(self, target: str, kinds) -> Aimed | None:
        aimed = [fault for fault in self.faults if fault.spec.target == target and fault.kind in kinds]
        if not aimed:
            return None
        self.claimed.update(fault.index for fault in aimed)
        return Aimed(self, target, aimed)

    def injected(self, aimed: Aimed, fault: Fault, dev_num: int) -> None:
        self.counts[f"injected.{fault.kind}"] += 1
        if fault.kind in LOSING:
            self.counts["lost"] += 1
        self._log.mark(self.env.now, aimed.log_id, self._ev[fault.kind], -1, dev_num, fault.index)

    def recovered(self, aimed: Aimed, count: int) -> None:
        self.counts["lost"] -= count
        self.counts["recovered"] += count
        self._log.mark(self.env.now, aimed.log_id, self._ev_recovered, -1, -1, count)

    def arm(self, devices) -> None:
        """Once the model is built: hot-unplug the devices aimed at, and reject a fault that aims at nothing
        (`devices`: the model's devices by scenario name)."""
        by_name = {device.name: device for device in devices.values()}
        for fault in self.faults:
            spec = fault.spec
            if fault.kind == "hot-unplug" and spec.target in by_name:
                device = by_name[spec.target]
                if device.added_at is not None and spec.start <= device.added_at:
                    raise ScenarioError(f"faults[{fault.index}].start: {spec.target} is hot-plugged at "
                                        f"{device.added_at} ns; it can be pulled out only after that")
                if device.removed_at is None or device.removed_at > spec.start:
                    device.removed_at = spec.start
                self.claimed.add(fault.index)
                self.counts["injected.hot-unplug"] += 1
        for fault in self.faults:
            if fault.index not in self.claimed:
                raise ScenarioError(f"faults[{fault.index}].target: {_nothing_named(fault.spec, by_name)}")


def _nothing_named(spec, devices: dict) -> str:
    if spec.kind == "hot-unplug":
        return f"no device named {spec.target!r}; devices: {', '.join(sorted(devices))}"
    if spec.kind in DOORBELL_KINDS:
        return (f"no doorbell named {spec.target!r} (a doorbell is `<bus>.to_device.doorbell` or "
                "`<bus>.to_driver.doorbell`; a polled direction has none)")
    return f"no bus direction named {spec.target!r} (a direction is `<bus>.to_device` or `<bus>.to_driver`)"
