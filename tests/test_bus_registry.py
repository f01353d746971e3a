"""Bus kinds are plug-ins: a folder and one registry line make a new one, and the schema stays free of SimPy.

The loop bus below is defined here alone: a spec, a plug-in that hands each frame to the other side after a
fixed wire delay, and a `BusKind`. Registered before the scenario schema is built, it can be written in a
scenario, is checked and runs, with every device initialised and every request answered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from vmsim.buses import KINDS, BusKind, doorbell_kinds, register
from vmsim.schema import Name, Strict, TimeNs

TESTS = Path(__file__).resolve().parent


class LoopBusSpec(Strict):
    """A bus whose frames cross a wire of fixed delay: no queue, no doorbell, no cost but the delay."""

    plugin: ClassVar[str] = "test_bus_registry:LoopBus"
    kind: Literal["loop"]
    name: Name
    driver: Name
    layout: Literal["v1"] = "v1"
    max_msg_size: int = 256
    memory: Name
    delay: TimeNs = 500


LOOP = BusKind(name="loop", spec=LoopBusSpec, doorbell_kinds=("loop-wire",), notifiers=())


def loop_bus_class():
    """The plug-in, made when the simulator asks for it (this module is imported before SimPy is)."""
    from vmsim.sim.bus import Bus

    class LoopBus(Bus):
        def __init__(self, sim, spec, memory):
            super().__init__(sim, spec.name, layout=spec.layout, max_msg_size=spec.max_msg_size, in_band=True)
            self.spec = spec
            self.driver_memory = self.device_memory = memory

        @classmethod
        def build(cls, sim, spec, context):
            return cls(sim, spec, context.memory(spec.memory))

        def carry_to_device(self, frame, dev_num):
            yield self.env.timeout(self.spec.delay)
            work = self.deliver_to_device(frame)
            if work is not None:
                yield from work

        def carry_to_driver(self, frame, dev_num):
            yield self.env.timeout(self.spec.delay)
            work = self.deliver_to_driver(frame)
            if work is not None:
                yield from work

    return LoopBus


def __getattr__(name: str):
    if name == "LoopBus":
        return loop_bus_class()
    raise AttributeError(name)


SCENARIO = {
    "name": "loop", "seed": 1,
    "platform": {"name": "bench", "memory": {"ideal": {}}, "doorbells": {"wire": {"kind": "loop-wire"}}},
    "drivers": [{"name": "linux"}],
    "buses": [{"kind": "loop", "name": "loop0", "driver": "linux", "memory": "ideal", "delay": "1 us"}],
    "devices": [{"name": "blk", "bus": "loop0", "dev_num": 3, "service": {"dist": "constant", "value": "2 us"}}],
    "workloads": [{"name": "io", "device": "blk", "arrivals": {"kind": "closed", "outstanding": 1},
                   "requests": 20}],
}

PROGRAM = f"""
import json, sys
sys.path.insert(0, {str(TESTS)!r})
import vmsim.buses
from test_bus_registry import LOOP, SCENARIO
vmsim.buses.register(LOOP)
from vmsim.scenario import load_dict
from vmsim.sim import build
output = build(load_dict(SCENARIO)).run()
requests = output.requests.columns()
print(json.dumps([len(requests["request_id"]), sorted(output.init_done_ns), int(min(requests["latency_ns"]))]))
"""


def test_a_bus_kind_defined_in_a_test_alone_registers_and_runs_a_scenario():
    """One `register` line (in vmsim: one line in `vmsim.buses`) is all a new kind needs: the scenario names
    `kind: loop` and a `loop-wire` doorbell, is validated against the loop spec, and runs over the plug-in.
    The fastest request takes the 1 us crossing that tells the device of its buffer plus its 2 us service.
    A fresh interpreter, because the schema is built once, from the kinds registered."""
    done = subprocess.run([sys.executable, "-c", PROGRAM], check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [20, ["loop0.blk"], 3_000]


def test_a_kind_registered_after_the_schema_was_built_is_refused():
    """The scenario schema is built once from the registry; a kind added later could not be written in a
    scenario, so registering it says so instead of being silently ignored."""
    import vmsim.scenario  # noqa: F401  (builds the schema)

    with pytest.raises(RuntimeError, match="before importing vmsim.scenario"):
        register(LOOP)
    assert "loop" not in KINDS


def test_the_shipped_kinds_bring_their_doorbells_in_registry_order():
    assert list(KINDS) == ["amp", "xen", "ffa"]
    assert doorbell_kinds() == ("ipi", "mailbox", "pcie-bar", "msi-x", "evtchn", "ffa-notification", "ideal")


def test_the_scenario_schema_loads_no_simulator():
    """Validating a scenario needs pydantic and the bus kinds' specs, never SimPy or numpy: checked in a fresh
    interpreter, where nothing else has imported them."""
    program = ("import sys, vmsim.scenario; "
               "loaded = [m for m in ('simpy', 'numpy') if m in sys.modules]; print(loaded)")
    done = subprocess.run([sys.executable, "-c", program], check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
