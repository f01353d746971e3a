"""The notebook API: `vmsim.run(path, ...)` loads, checks, simulates and (optionally) writes a result.

Overrides use one convention everywhere, the command line's: a dotted key path and a value,
`{"buses.amp0.queue_elements": 16}` or `["buses.amp0.queue_elements=16"]` (the `--set` syntax).
Keyword overrides are the same with `__` for each dot (`buses__amp0__queue_elements=16`), handy
for top-level keys: `vmsim.run(path, duration="10 ms")`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import yaml

from vmsim import __version__
from vmsim.results import RunResult, check_destination, summarize

RESULTS_ROOT = Path("results")


def override_arguments(set: Mapping[str, object] | Iterable[str] | None = None, *,
                       seed: int | None = None, **overrides) -> list[str]:
    """All override forms as `--set` arguments, in precedence order: `set`, keywords, `seed`.

    Dict values are written as YAML so the loader reads back exactly the value given
    (the string "true" stays a string, a list stays a list).
    """
    if isinstance(set, str):
        set = [set]
    arguments = [f"{key}={_as_yaml(value)}" for key, value in set.items()] if isinstance(set, Mapping) \
        else list(set or ())
    arguments += [f"{key.replace('__', '.')}={_as_yaml(value)}" for key, value in overrides.items()]
    if seed is not None:
        arguments.append(f"seed={int(seed)}")
    return arguments


def _as_yaml(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=2**31).strip().removesuffix("...").strip()


def default_folder(scenario_name: str) -> Path:
    """Where a run is written unless told otherwise: results/<scenario name>/ under the cwd."""
    return RESULTS_ROOT / scenario_name


def run(path: str | Path, *, seed: int | None = None, out: str | Path | None = None, plots: bool = True,
        trace: bool = True, write: bool = True, set: Mapping[str, object] | Iterable[str] | None = None,
        progress: Callable[[float], None] | None = None, **overrides) -> RunResult:
    """Run the scenario at `path` and return its `RunResult`.

    seed:      replaces the scenario's seed (same as `set={"seed": N}`).
    out:       result folder (default results/<scenario name>/), written atomically; an existing one is
               replaced only when empty or a vmsim result (see `vmsim.results.check_destination`);
               a symlink is followed.
    write:     False keeps everything in memory (no folder; plots/trace then unused).
    set:       overrides, {"dotted.key": value} or ["dotted.key=value", ...].
    progress:  called now and then with the fraction of the run done, in [0, 1].
    overrides: more overrides as keywords, `__` for each dot.

    Every user error (bad file, override, topology, an out folder that cannot be written or must not be
    replaced) is raised as a `VmsimError` before anything is simulated or written.
    """
    from vmsim.scenario import load, read_trace, resolved_dict
    from vmsim.sim import build
    from vmsim.topology import build_graph

    scenario = load(path, override_arguments(set, seed=seed, **overrides))
    graph = build_graph(scenario)
    folder = Path(out) if out is not None else default_folder(scenario.name)
    if write:
        check_destination(folder)
    model = build(scenario, traces={w.name: read_trace(w.arrivals.file) for w in scenario.workloads
                                    if w.arrivals.kind == "trace"})
    started = time.perf_counter()
    output = model.run(progress=progress)
    wall_seconds = time.perf_counter() - started
    summary = summarize(output, wall_seconds=wall_seconds, version=__version__)
    result = RunResult(scenario, output, summary, graph=graph)
    if write:
        result.write(folder, plots=plots, trace=trace, resolved_config=resolved_dict(scenario))
    return result
