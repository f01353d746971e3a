"""Plots fit for a slide: one colour per method in every figure, labelled topology, occupancy per window."""

from __future__ import annotations

import subprocess
import sys

from vmsim.analysis.plots import colour_of


def test_a_format_keeps_its_colour_whatever_else_is_drawn():
    """A notebook compares formats in several figures: spsc-2025 must not turn green in the next one."""
    assert colour_of("spsc-2025") == colour_of("SPSC-2025 ") != colour_of("spsc-2024")
    assert len({colour_of(name) for name in ("amp-2026", "spsc-2025", "spsc-2024")}) == 3


def test_an_unknown_name_has_the_same_colour_in_another_process():
    """Python salts `hash` per process; the colour comes from the name's text, so a rerun keeps it."""
    here = colour_of("bus7.blk0")
    program = "from vmsim.analysis.plots import colour_of; print(colour_of('bus7.blk0'))"
    there = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True)
    assert there.stdout.strip() == here
