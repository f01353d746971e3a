"""vmsim: a discrete-event simulator of virtio-msg topologies.

The top-level names are imported lazily so that `import vmsim.wire` stays as light as the
standard library and the command line starts fast.
"""

from vmsim._version import __version__
from vmsim.errors import DecodeError, EncodeError, ScenarioError, VmsimError

__all__ = ["DecodeError", "EncodeError", "ScenarioError", "VmsimError", "__version__", "run", "sweep"]


def __getattr__(name):
    if name == "run":
        from vmsim.api import run

        return run
    if name == "sweep":
        from vmsim.sweeps import sweep

        return sweep
    raise AttributeError(f"module 'vmsim' has no attribute {name!r}")
