"""AMP: two heterogeneous cores sharing a window of memory, its queues and a doorbell each way.

`spec` is the `buses:` entry, `checks` what its queue formats can carry, `bus` the SimPy plug-in (two
channels over one window); memory shared under a policy is the base bus's carve-out, announced with
vmsim-share messages.
"""

from vmsim.buses.amp import checks
from vmsim.buses.amp.spec import AmpBusSpec
from vmsim.buses.kind import BusKind

KIND = BusKind(name="amp", spec=AmpBusSpec, doorbell_kinds=("ipi", "mailbox", "pcie-bar", "msi-x"),
               checks=checks.problems, share_checks=checks.share_checks)
