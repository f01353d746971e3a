"""What one queue operation touches in shared memory: layout facts, not costs.

A queue view (`vmsim.wire.amp.AmpQueue`, the queues of `vmsim.wire.spsc`) describes each of its operations as
the `Access`es it makes, one per place: which bytes of the shared buffer, read or written. What those cost on
a given memory (how many lines, which accesses share one) is the simulator's to work out (`vmsim.sim.costs`).
"""

from __future__ import annotations

from typing import NamedTuple


class Access(NamedTuple):
    offset: int
    """Where in the shared buffer, in bytes."""
    nbytes: int
    write: bool
    """Written (True) or read (False)."""

