"""Capacity studies: a base scenario run over a grid of overrides, with replications, resumable.

`vmsim.sweep` (the function, also `vmsim.sweeps.sweep`) runs a sweep file and returns its points table;
`vmsim sweep` is the same on the command line. The modules, each using only those above it in this list:

- `spec`: the sweep file's schema (its `compare:` form too), and `load_sweep`, which checks it all and plans
  one task per run;
- `records`: the sweep folder and the checked, checksummed record of each finished run;
- `simulate`: one run, a task in and its record out, wherever it happens;
- `executors`: inline, a local process pool, or Dask;
- `tables`: the points table, means with confidence intervals, the throughput knee and the capacity;
- `plots` and `report`: the plots, summary.md and the other files a finished sweep leaves behind;
- `runner`: `sweep` itself, which ties them together.
"""

from vmsim.sweeps.executors import EXECUTORS, check_scheduler_address, connect_scheduler, die_with_parent
from vmsim.sweeps.plots import busiest_resources, latency_vs_load, throughput_vs_load, utilisation_vs_load
from vmsim.sweeps.records import SweepFolder, record_checksum, record_problem
from vmsim.sweeps.report import format_metric, format_report, summary_markdown
from vmsim.sweeps.runner import sweep
from vmsim.sweeps.simulate import flat_metrics, run_point
from vmsim.sweeps.spec import (
    DEFAULT_METRICS,
    RUN_METRICS,
    Compare,
    Parameters,
    Sweep,
    SweepSpec,
    Target,
    Task,
    derive_seed,
    load_sweep,
    offered_rps,
)
from vmsim.sweeps.tables import Axes, capacity, knee, points_frame, summary_table, yaml_text

__all__ = [
    "DEFAULT_METRICS", "EXECUTORS", "RUN_METRICS", "Axes", "Compare", "Parameters", "Sweep", "SweepFolder",
    "SweepSpec", "Target", "Task", "busiest_resources", "capacity", "check_scheduler_address", "connect_scheduler",
    "derive_seed", "die_with_parent", "flat_metrics", "format_metric", "format_report", "knee",
    "latency_vs_load", "load_sweep", "offered_rps", "points_frame", "record_checksum", "record_problem",
    "run_point", "summary_markdown", "summary_table", "sweep", "throughput_vs_load", "utilisation_vs_load",
    "yaml_text",
]
