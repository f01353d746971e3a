"""The protocol constants live in `vmsim.wire`, which loads nothing but the standard library.

The scenario schema needs device ids and the page size; taking them from `wire` rather than from the
simulator is what lets a schema be read without loading SimPy and NumPy.
"""

from __future__ import annotations

import json
import subprocess
import sys

from vmsim.wire.memory import PAGE, PAGE_SHIFT, pages

LOADED_BY_WIRE = """
import json, pkgutil, sys
already = set(sys.modules)  # whatever the interpreter's start-up (site, .pth files) loaded
import vmsim.wire
for module in pkgutil.walk_packages(vmsim.wire.__path__, "vmsim.wire."):
    __import__(module.name)
print(json.dumps(sorted(set(sys.modules) - already)))
"""


def test_every_wire_module_loads_only_the_standard_library_and_vmsim_errors():
    """Imported in a fresh interpreter, every module under vmsim.wire pulls in no third-party package
    and no other part of vmsim (the package root, its version and its errors aside)."""
    output = subprocess.run([sys.executable, "-c", LOADED_BY_WIRE], capture_output=True, text=True, check=True)
    loaded = json.loads(output.stdout)
    assert "vmsim.wire.virtio" in loaded and "vmsim.wire.rings.packed" in loaded
    foreign = [name for name in loaded if name.split(".")[0] not in sys.stdlib_module_names | {"vmsim"}]
    assert foreign == []
    outside_wire = [name for name in loaded if name.startswith("vmsim.") and not name.startswith("vmsim.wire")]
    assert set(outside_wire) <= {"vmsim._version", "vmsim.errors"}


def test_a_buffer_spans_whole_4_kib_pages_and_at_least_one():
    """An empty buffer still takes a page to share; one byte past a page boundary takes another."""
    assert PAGE == 1 << PAGE_SHIFT == 4096
    assert [pages(n) for n in (0, 1, 4096, 4097, 3 * 4096)] == [1, 1, 1, 2, 3]
