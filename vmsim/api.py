"""The notebook API: `vmsim.run(path, ...)` loads, checks, simulates and (optionally) writes a result.

Overrides use one convention everywhere, the command line's: a dotted key path and a value,
`{"buses.amp0.queue_elements": 16}` or `["buses.amp0.queue_elements=16"]` (the `--set` syntax).
Keyword overrides are the same with `__` for each dot (`buses__amp0__queue_elements=16`), handy
for top-level keys: `vmsim.run(path, duration="10 ms")`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path

from vmsim.files import DEFAULT_RESULTS_ROOT
from vmsim.forked import ForkedWorker
from vmsim.result_folder import check_destination
from vmsim.results import RunResult, draw_plots_ahead, prepare_plots
from vmsim.spill import LogSpill


def default_folder(scenario_name: str) -> Path:
    """Where a run is written unless told otherwise: results/<scenario name>/ under the cwd."""
    return DEFAULT_RESULTS_ROOT / scenario_name


def run(path: str | Path, *, seed: int | None = None, out: str | Path | None = None, plots: bool = True,
        trace: bool = True, trace_format: str = "perfetto", write: bool = True,
        set: Mapping[str, object] | Iterable[str] | None = None,
        progress: Callable[[float], None] | None = None, **overrides) -> RunResult:
    """Run the scenario at `path` and return its `RunResult`.

    seed:      replaces the scenario's seed (same as `set={"seed": N}`).
    out:       result folder (default results/<scenario name>/), written atomically; an existing one is
               replaced only when empty or a vmsim result (see `vmsim.result_folder.check_destination`);
               a symlink is followed.
    trace_format: "perfetto" (trace.perfetto-trace, Perfetto's protobuf) or "json" (trace.json).
    write:     False keeps everything in memory (no folder; plots/trace then unused).
    set:       overrides, {"dotted.key": value} or ["dotted.key=value", ...].
    progress:  called now and then with the fraction of the run done, in [0, 1].
    overrides: more overrides as keywords, `__` for each dot.

    Every user error (bad file, override, topology, an out folder that cannot be written or must not be
    replaced) is raised as a `VmsimError` before anything is simulated or written.
    """
    from vmsim.pipeline import load, simulate
    from vmsim.scenario import resolved_dict
    from vmsim.scenario.overrides import override_arguments
    from vmsim.trace import check_trace_format

    check_trace_format(trace_format)
    checked = load(path, override_arguments(set, seed=seed, **overrides))
    folder = Path(out) if out is not None else default_folder(checked.scenario.name)
    if write:
        check_destination(folder)
    spill = LogSpill.next_to(folder) if write else None  # a written run streams its logs to parquet
    plotter = None
    if write and plots:  # forked now: it imports what it draws with and draws the topology while this one simulates
        plotter = ForkedWorker("plots", prepare=partial(prepare_plots, checked.graph, spill.spill_folder))
    try:
        ran = simulate(checked, progress, spill=spill)
        if plotter is not None:  # drawn while this process summarises the run
            draw_plots_ahead(plotter, checked.scenario, ran.output, graph=checked.graph, spill=spill)
        result = RunResult.of(checked.scenario, ran.output, wall_seconds=ran.wall_seconds, graph=checked.graph,
                              spill=spill)
        if write:
            result.write(folder, plots=plots, trace=trace, trace_format=trace_format,
                         resolved_config=resolved_dict(checked.scenario), plotter=plotter)
    finally:
        if plotter is not None:
            plotter.cancel()
    return result
