"""FF-A: a driver endpoint and an Arm FF-A partition exchanging frames through FF-A calls.

`spec` is the `buses:` entry and the platform's `ffa:` costs, `checks` what the scenario must hold,
`protocol` the generations and method negotiation, `partition` who a frame crosses, `bus` the SimPy plug-in,
`direct` and `messages` the ways it carries a frame and `memory` its sharing mechanism.
"""

from vmsim.buses.ffa import checks
from vmsim.buses.ffa.spec import FfaBusSpec, FfaCosts
from vmsim.buses.kind import BusKind

KIND = BusKind(name="ffa", spec=FfaBusSpec, costs=FfaCosts, doorbell_kinds=("ffa-notification",),
               notifiers=("notification",), checks=checks.problems, share_checks=checks.share_checks)
