"""Xen: domains exchanging frames over one granted page, event channels and grants.

`spec` is the `buses:` entry, the `domains:` and the platform's `xen:` costs, `checks` what the scenario
must hold, `host` the domains (vCPU pools) and event channels, `bus` the SimPy plug-in and `grants` its
sharing mechanism.
"""

from vmsim.buses.kind import BusKind
from vmsim.buses.xen import checks
from vmsim.buses.xen.spec import XenBusSpec, XenCosts

KIND = BusKind(name="xen", spec=XenBusSpec, costs=XenCosts, doorbell_kinds=("evtchn",),
               checks=checks.problems, share_checks=checks.share_checks)
