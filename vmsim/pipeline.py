"""One run of a scenario, written once: scenario -> checks -> model -> run -> logs.

`vmsim.run` (the notebook API and `vmsim run`), every run of a sweep, the tests and the benchmarks go
through `load` and `simulate`, so "the same scenario and seed" takes the same steps everywhere. Loading
checks the scenario and keeps what checking built (the topology graph, the parsed trace files); the model
is built from those, so a run builds its graph and reads its traces once. What a run leaves is its
`SimOutput`; turning it into tables, a summary and a folder is the results layer's business, above this one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vmsim.scenario.loader import Checked, load_checked, load_checked_dict
from vmsim.sim import build
from vmsim.sim.output import SimOutput


@dataclass(frozen=True)
class Ran:
    """A finished run: the checked scenario it came from, its logs, and the wall time the event loop took."""

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


def simulate(checked: Checked, progress: Callable[[float], None] | None = None) -> Ran:
    """Build the model of a checked scenario and run it to its end."""
    model = build(checked.scenario, traces=checked.traces)
    started = time.perf_counter()
    output = model.run(progress=progress)
    return Ran(checked, output, time.perf_counter() - started)


def run(source: str | Path | Mapping, overrides: Sequence[str] = (), *, name: str | None = None,
        base_dir: str | Path | None = None, progress: Callable[[float], None] | None = None) -> Ran:
    """`load` then `simulate`: a scenario file or mapping in, its finished run out."""
    return simulate(load(source, overrides, name=name, base_dir=base_dir), progress)
