"""One run of a scenario, written once: scenario -> checks -> model -> run -> logs.

`vmsim.run` (the notebook API and `vmsim run`), every run of a sweep, the tests and the benchmarks go
through `load` and `simulate`, so "the same scenario and seed" takes the same steps everywhere. Loading
checks the scenario and keeps what checking built (the topology graph, the parsed trace files); the model
is built from those, so a run builds its graph and reads its traces once. What a run leaves is its
`SimOutput`; turning it into tables, a summary and a folder is the results layer's business, above this one.
That layer may also hand `simulate` a spill (`vmsim.spill.LogSpill`) the logs stream into as the
run goes, so their memory stays flat; without one they are kept whole (a notebook's, a sweep's, a test's).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from vmsim.scenario.loader import Checked, load_checked, load_checked_dict
from vmsim.sim import build
from vmsim.sim.output import SimOutput


class Spill(Protocol):
    """Where the logs stream while the run goes (`vmsim.spill.LogSpill`): a sink per log, the wall
    time spent writing, and the end of the run (the last rows handed over, or all dropped if it failed)."""

    seconds: float

    def attach(self, events, requests) -> None: ...

    def finish(self, events, requests) -> None: ...

    def discard(self) -> None: ...


@dataclass(frozen=True)
class Ran:
    """A finished run: the checked scenario it came from, its logs, and the wall time the event loop took
    (less what streaming its logs to a spill took: the simulation's own time)."""

    checked: Checked
    output: SimOutput
    wall_seconds: float


def load(source: str | Path | Mapping, overrides: Sequence[str] = (), *, name: str | None = None,
         base_dir: str | Path | None = None) -> Checked:
    """Load and check a scenario file, or a mapping (named `name` in messages, relative paths taken from
    `base_dir`); every user error is one `ScenarioError`, raised before anything is built."""
    if isinstance(source, Mapping):
        return load_checked_dict(dict(source), name or f"scenario {source.get('name')}", overrides, base_dir)
    return load_checked(source, overrides)


def simulate(checked: Checked, progress: Callable[[float], None] | None = None, *,
             spill: Spill | None = None) -> Ran:
    """Build the model of a checked scenario and run it to its end, its logs streamed into `spill` if any."""
    try:
        model = build(checked.scenario, traces=checked.traces)
        if spill is not None:
            spill.attach(model.sim.log, model.sim.requests)
        started = time.perf_counter()
        output = model.run(progress=progress)
        wall_seconds = time.perf_counter() - started - (spill.seconds if spill is not None else 0.0)
        if spill is not None:
            spill.finish(output.events, output.requests)
    except BaseException:
        if spill is not None:
            spill.discard()
        raise
    return Ran(checked, output, wall_seconds)


def run(source: str | Path | Mapping, overrides: Sequence[str] = (), *, name: str | None = None,
        base_dir: str | Path | None = None, progress: Callable[[float], None] | None = None) -> Ran:
    """`load` then `simulate`: a scenario file or mapping in, its finished run out."""
    return simulate(load(source, overrides, name=name, base_dir=base_dir), progress)
