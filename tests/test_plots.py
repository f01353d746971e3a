"""Plots fit for a slide: one colour per method in every figure, labelled topology, occupancy per window."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_occupancy_per_window_is_the_time_weighted_mean_and_the_peak():
    """Two elements from 10 to 30 ns, one from 30 to 40: the windows of 20 ns hold means 1 and 1.5 and
    peaks 2 and 2, where a step plot of millions of changes would be a barcode."""
    from vmsim.analysis.stats import windowed_levels

    edges, means, peaks = windowed_levels([10, 30], [2, 1], 40, 2)
    assert list(edges) == [0, 20, 40] and list(means) == [1.0, 1.5] and list(peaks) == [2, 2]


def test_a_cdf_is_drawn_from_a_few_hundred_points_whatever_the_sample():
    """Plots read aggregates, not every row: 2**20 latencies (about a million, up to 1 ms) make a point per
    filled log-spaced bin (64 exact ones, then 32 an octave: 14 octaves above 64 ns), ending at the maximum."""
    import numpy as np

    from vmsim.analysis.plots import cdf_points

    values, fractions = cdf_points(np.arange(2**20))
    assert len(values) == len(fractions) == 64 + 32 * 14 and fractions[-1] == 1.0 and values[-1] == 2**20 - 1


def test_the_standard_plots_render_for_a_small_run(tmp_path):
    """Occupancy per window, CDF per bus and the legends outside render without error into PNG files."""
    from sim_helpers import run, scenario_dict

    from vmsim.analysis.plots import save_plots
    from vmsim.results import RunResult

    data = scenario_dict(duration="2 ms", workloads=[{"name": "load", "device": "dev",
                                                      "arrivals": {"kind": "poisson", "rate": "100 kHz"}}])
    model, output = run(data)
    result = RunResult.of(model.scenario, output, wall_seconds=0.0)
    assert all(path.stat().st_size > 0 for path in save_plots(result, tmp_path))


def test_the_topology_shows_that_four_domus_share_one_dom0():
    """Each bus says where its devices are served, the four buses take dom0's colour, and the legend
    counts them: a slide shows the shared backend without the scenario file."""
    from matplotlib.figure import Figure

    from vmsim.analysis.plots import topology
    from vmsim.scenario.loader import load
    from vmsim.topology import build_graph

    ax = topology(build_graph(load(Path(__file__).parent.parent / "scenarios" / "xen-many-domus.yaml")), ax=Figure().add_subplot())
    texts = [text.get_text() for text in ax.texts]
    assert "xen, v1\ndomu1 → dom0 (shared by 4)" in texts and "block" in texts
    assert "backend dom0: 4 buses" in [text.get_text() for text in ax.get_legend().get_texts()]
    names = next(text for text in ax.texts if text.get_text() == "xen1")
    assert names.get_va() == "top" and names.get_transform().transform((0, 0))[1] < \
        ax.transData.transform((0, 0))[1]  # drawn below its marker's centre, not over it
