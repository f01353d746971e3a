"""SimPy model of virtio-msg systems: drivers, devices, bus plug-ins, doorbells, memory, virtqueues.

Imports `vmsim.wire`, `simpy` and `numpy` only. `build(scenario)` elaborates a validated scenario
into a `Model`; `Model.run()` returns a `SimOutput` for the results layer.
"""

from vmsim.sim.model import Model, build
from vmsim.sim.output import SimOutput

__all__ = ["Model", "SimOutput", "build"]
