"""The sweep file and its plan: schema, base scenario and every point's overrides checked, seeds and tasks.

A sweep file names a base scenario, the parameters that make each point (dotted `--set` keys, as a grid,
a zip or an explicit list), how many replications of each point to run and the metrics to summarise.
`exclude:` drops the points that match an entry (every key it names has the value given, or one of the
values a list gives), before any is loaded: combinations the model refuses (spsc queues with 256-byte
elements) need not be spelled out point by point. `load_sweep` checks all of it before anything runs and
turns it into a `Sweep`: one `Task` per (point, replication), each carrying its fully resolved scenario, so a
worker needs no file of this machine.

Seeds: replication r of every point runs with the same seed, derived from (base seed, r), and each
component draws from its own stream seeded from that seed and its dotted name. So all points share
common random numbers and differences between points are not drowned in sampling noise. With
`common_random_numbers: false` the point's parameters enter the seed as well.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vmsim._version import __version__
from vmsim.errors import ScenarioError
from vmsim.scenario import load, resolved_dict
from vmsim.scenario.locations import Locations, Origin, format_path, read_yaml
from vmsim.scenario.overrides import LENGTH_KEY, count_problem, locate, override_arguments, parse_override
from vmsim.scenario.schema_problems import at_most, schema_problems
from vmsim.summary import json_ready
from vmsim.units import parse_time_ns

LATENCY_STATISTICS = ("mean", "p50", "p90", "p99", "p999", "max")
RUN_METRICS = ("offered_rps", "throughput_rps", "requests_total", "requests_completed",
               *(f"latency_{statistic}_ns" for statistic in LATENCY_STATISTICS))
DEFAULT_METRICS = ["throughput_rps", "latency_mean_ns", "latency_p99_ns"]
_MAX_PROBLEMS = 10


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Parameters(_Strict):
    """Each form gives a list of assignments; the sweep's points are their product (grid, zip, points)."""

    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    points: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("grid", "zip")
    @classmethod
    def _values_given(cls, form: dict[str, list]) -> dict[str, list]:
        for key, values in form.items():
            if not values:
                raise ValueError(f"{key}: give at least one value")
        return form

    @model_validator(mode="after")
    def _consistent(self):
        if len({len(values) for values in self.zip.values()}) > 1:
            lengths = ", ".join(f"{key}: {len(values)}" for key, values in self.zip.items())
            raise ValueError(f"zip lists must have the same length ({lengths})")
        seen = list(self.grid) + list(self.zip) + list(dict.fromkeys(k for point in self.points for k in point))
        twice = sorted({key for key in seen if seen.count(key) > 1})
        if twice:
            raise ValueError(f"a key may appear in only one of grid, zip and points: {', '.join(twice)}")
        return self

    def keys(self) -> list[str]:
        return list(dict.fromkeys([*self.grid, *self.zip, *(k for point in self.points for k in point)]))

    def expand(self) -> list[dict[str, Any]]:
        forms = []
        if self.grid:
            forms.append([dict(zip(self.grid, values)) for values in itertools.product(*self.grid.values())])
        if self.zip:
            forms.append([dict(zip(self.zip, values)) for values in zip(*self.zip.values())])
        if self.points:
            forms.append(self.points)
        points: list[dict[str, Any]] = [{}]
        for form in forms:
            points = [{**done, **more} for done in points for more in form]
        return points


class Target(_Strict):
    """A limit a metric must stay under, e.g. p99 latency at most 50 us; capacity is the most load that meets it."""

    metric: str
    at_most: float

    @model_validator(mode="before")
    @classmethod
    def _read_units(cls, data):
        """'50 us' for a metric in nanoseconds; a plain number otherwise."""
        if isinstance(data, dict) and str(data.get("metric", "")).endswith("_ns") and "at_most" in data:
            data = {**data, "at_most": parse_time_ns(data["at_most"])}
        return data


class Compare(_Strict):
    """Named bus configurations of one workload, each run at every load: `vmsim compare` puts them side by side.

    `load` maps one dotted key (an arrival rate) to its values; without it each configuration runs at the
    base scenario's load. `bus` is the bus whose per-request costs the table shows (default: the only one).
    """

    load: dict[str, list[Any]] = Field(default_factory=dict, max_length=1)
    configurations: dict[str, dict[str, Any]] = Field(min_length=1)
    bus: str | None = None

    @field_validator("load")
    @classmethod
    def _loads_given(cls, load: dict[str, list]) -> dict[str, list]:
        for key, values in load.items():
            if not values:
                raise ValueError(f"{key}: give at least one load")
        return load

    @model_validator(mode="after")
    def _load_apart(self):
        clash = sorted({name for name, overrides in self.configurations.items() if set(overrides) & set(self.load)})
        if clash:
            raise ValueError(f"the load key is set by load alone, not by configurations {', '.join(clash)}")
        return self

    def keys(self) -> list[str]:
        return list(dict.fromkeys([*self.load, *(key for overrides in self.configurations.values()
                                                 for key in overrides)]))

    def expand(self) -> tuple[list[dict[str, Any]], list[str]]:
        """Every (configuration, load) as a point, configuration by configuration, and each point's configuration."""
        loads = [{key: value} for key, values in self.load.items() for value in values] or [{}]
        points, names = [], []
        for name, overrides in self.configurations.items():
            for at in loads:
                points.append({**overrides, **at})
                names.append(name)
        return points, names


class SweepSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=64)
    description: str = ""
    scenario: str
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    replications: int = Field(default=5, ge=1, le=10_000)
    common_random_numbers: bool = True
    set: dict[str, Any] = Field(default_factory=dict)
    parameters: Parameters = Field(default_factory=Parameters)
    compare: Compare | None = None
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS), min_length=1)
    target: Target | None = None

    @model_validator(mode="after")
    def _one_form(self):
        if self.compare is not None and self.parameters.keys():
            raise ValueError("give parameters or compare, not both: compare makes the points itself")
        return self


@dataclass(frozen=True)
class Task:
    """One run: everything a worker needs, and nothing that ties it to this machine's files."""

    point: int
    replication: int
    seed: int
    key: str  # hash of the resolved scenario and vmsim version: a record with another key is stale
    parameters: dict
    scenario: dict  # the point's resolved scenario with this run's seed

    @property
    def file_name(self) -> str:
        return record_file_name(self.point, self.replication)


def record_file_name(point: int, replication: int) -> str:
    return f"{point:04d}-{replication:02d}.json"


@dataclass
class Sweep:
    """A validated sweep: its points, every run to do, and how to read the results."""

    name: str
    description: str
    scenario_path: str
    base_seed: int
    replications: int
    common_random_numbers: bool
    parameters: list[str]
    points: list[dict]
    offered_rps: list[float]
    metrics: list[str]
    target: Target | None
    tasks: list[Task]
    excluded: int = 0  # points the sweep file's `exclude:` dropped
    configurations: list[str] | None = None  # a compare file's: each point's configuration
    compared_bus: str | None = None  # a compare file's: the bus whose per-request costs are shown

    def describe(self) -> dict:
        """What ran, as JSON: the marker file of a sweep folder."""
        return json_ready({
            "name": self.name, "description": self.description, "scenario": self.scenario_path,
            "base_seed": self.base_seed, "replications": self.replications,
            "common_random_numbers": self.common_random_numbers, "metrics": self.metrics, "excluded": self.excluded,
            "target": None if self.target is None else self.target.model_dump(),
            "points": [{"point": index, "parameters": point, "offered_rps": offered,
                        **({"configuration": self.configurations[index]} if self.configurations else {})}
                       for index, (point, offered) in enumerate(zip(self.points, self.offered_rps))],
            **({"compared_bus": self.compared_bus} if self.configurations else {}),
            "vmsim_version": __version__,
        })


def load_sweep(source: str | Path | Mapping, base_dir: str | Path | None = None) -> Sweep:
    """Read and check a sweep file (or a mapping): schema, base scenario, every point's overrides, metrics.

    Nothing runs until all of it is valid; every problem is one `file:line: key: message` line of
    one `ScenarioError`. The scenario path is taken from the sweep file's folder (a mapping's from
    `base_dir`, default the working directory).
    """
    if isinstance(source, Mapping):
        data, locations = dict(source), Locations(Origin("<sweep>"))
        data.setdefault("name", "sweep")
        folder = Path.cwd() if base_dir is None else Path(base_dir)
    else:
        path = Path(source)
        data, locations = read_yaml(path, str(path))
        if isinstance(data, dict):
            data.setdefault("name", re.sub(r"[^A-Za-z0-9_-]", "_", path.stem))
        folder = path.parent
    if not isinstance(data, dict):
        raise ScenarioError(locations.problem((), "a sweep file is a mapping of keys (scenario, parameters, ...)"))
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        found, left_out = schema_problems(exc, data, locations, SweepSpec)
        raise ScenarioError(*at_most(found, locations, left_out)) from None
    return _plan(spec, folder / spec.scenario, locations)


def _plan(spec: SweepSpec, scenario_path: Path, locations: Locations) -> Sweep:
    """Load the base scenario and each point's scenario; derive seeds and tasks."""
    shown = str(scenario_path)
    if not scenario_path.is_file():
        raise ScenarioError(locations.problem(("scenario",), f"base scenario {shown} not found"))
    fixed = override_arguments(spec.set)
    sources = {argument: ("set", key) for argument, key in zip(fixed, spec.set)}
    base = _load_placed(scenario_path, fixed, sources, locations)
    _check_metrics(spec, base, locations)
    raw_base, _ = read_yaml(scenario_path, shown)
    if spec.compare is None:
        keys, (every_point, names) = spec.parameters.keys(), (spec.parameters.expand(), None)
        point_sources = {key: _parameter_location(spec.parameters, key) for key in keys}
    else:
        keys, (every_point, names) = spec.compare.keys(), spec.compare.expand()
    kept = _without_excluded(every_point, spec.exclude, keys, locations)
    points = [every_point[index] for index in kept]
    names = None if names is None else [names[index] for index in kept]
    problems: list[str] = []
    resolved: list[dict] = []
    offered: list[float] = []
    for index, point in enumerate(points):
        if names is not None:
            point_sources = _compare_locations(spec.compare, names[index])
        try:
            cuts, others = _point_overrides(point, raw_base, point_sources, locations)
            scenario = _load_placed(scenario_path, list(cuts) + fixed + list(others),
                                    {**sources, **cuts, **others}, locations, prefix=f"point {index}: ")
        except ScenarioError as exc:
            problems.extend(problem for problem in exc.problems if problem not in problems)
            continue
        resolved.append(resolved_dict(scenario))
        offered.append(offered_rps(scenario))
    if problems:
        shown_problems = problems[:_MAX_PROBLEMS]
        if len(problems) > _MAX_PROBLEMS:
            shown_problems.append(f"... and {len(problems) - _MAX_PROBLEMS} more problems")
        raise ScenarioError(*shown_problems)
    base_seed = base.seed if spec.seed is None else spec.seed
    tasks = []
    for replication in range(spec.replications):
        for index, (point, scenario) in enumerate(zip(points, resolved)):
            identity = None if spec.common_random_numbers else _point_identity(point)
            seed = derive_seed(base_seed, replication, identity)
            run = {**scenario, "seed": seed}
            tasks.append(Task(index, replication, seed, _task_key(run), point, run))
    metrics = list(dict.fromkeys(spec.metrics + ([spec.target.metric] if spec.target else [])))
    return Sweep(spec.name, spec.description, shown, base_seed, spec.replications, spec.common_random_numbers,
                 keys, points, offered, metrics, spec.target, tasks, len(every_point) - len(points), names,
                 None if spec.compare is None else _compared_bus(spec.compare, base, locations))


def _compare_locations(compare: Compare, name: str) -> dict[str, tuple]:
    """Where a compare file gives each key of a point of configuration `name`."""
    return {**{key: ("compare", "configurations", name, key) for key in compare.configurations[name]},
            **{key: ("compare", "load", key) for key in compare.load}}


def _compared_bus(compare: Compare, base, locations: Locations) -> str:
    """The bus whose per-request costs a comparison shows: the one named, else the base scenario's only bus."""
    names = [bus.name for bus in base.buses]
    if compare.bus is None and len(names) == 1:
        return names[0]
    if compare.bus is None:
        raise ScenarioError(locations.problem(("compare",), f"name the bus whose costs to compare (bus: one of "
                                                            f"{', '.join(names)})"))
    if compare.bus not in names:
        raise ScenarioError(locations.problem(("compare", "bus"), f"no bus {compare.bus!r} in the base scenario "
                                                                  f"(it has {', '.join(names)})"))
    return compare.bus


def _without_excluded(points: list[dict], exclude: list[dict], keys: list[str], locations: Locations) -> list[int]:
    """The indices of the points no `exclude:` entry matches. An entry naming a key that is no parameter, or a value no
    point has (a typo: `256B` for `256 B`), would silently exclude nothing, so it is an error; so is an
    exclusion that leaves no point."""
    taken = {key: {_canonical(point[key]) for point in points if key in point} for key in keys}
    problems = []
    for index, entry in enumerate(exclude):
        if not entry:
            problems.append((("exclude", index), "an empty entry would exclude every point: name a parameter"))
        for key, value in entry.items():
            if key not in taken:
                problems.append((("exclude", index, key), (f"not a parameter of this sweep (they are "
                                                          f"{', '.join(keys) or 'none'})")))
                continue
            unseen = [choice for choice in _choices(value) if _canonical(choice) not in taken[key]]
            if unseen:
                problems.append((("exclude", index, key), (f"no point has {key} = {unseen[0]!r}, so this excludes "
                                                          "nothing (the values must be spelled as in parameters)")))
    if problems:
        raise ScenarioError(*locations.problems(problems))
    kept = [index for index, point in enumerate(points) if not any(_matches(point, entry) for entry in exclude)]
    if not kept:
        raise ScenarioError(locations.problem(("exclude",), f"excludes all {len(points)} points: nothing to run"))
    return kept


def _choices(value: Any) -> list:
    """An exclude value: one value, or a list of values any of which matches (to match a list, nest it)."""
    return value if isinstance(value, list) else [value]


def _matches(point: dict, entry: dict) -> bool:
    return all(key in point and _canonical(point[key]) in {_canonical(choice) for choice in _choices(value)}
               for key, value in entry.items())


def _canonical(value: Any) -> str:
    """A value as comparable text: `1` and `true` stay apart (in Python 1 == True)."""
    return json.dumps(value, sort_keys=True, default=str)


def _parameter_location(parameters: Parameters, key: str) -> tuple:
    for form in ("grid", "zip"):
        if key in getattr(parameters, form):
            return ("parameters", form, key)
    first = next(index for index, point in enumerate(parameters.points) if key in point)
    return ("parameters", "points", first, key)


def _point_overrides(point: dict, raw_base: dict, sources: dict,
                     locations: Locations) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """The point as `--set` arguments, each with where the sweep file gave it: first the `len(list): N`
    ones, which keep the first N items of a list of the base scenario (they go before `set`, which may
    then edit the items kept), then the rest."""
    cuts, others = {}, {}
    for key, value in point.items():
        match = LENGTH_KEY.fullmatch(key)
        if match is None:
            others[override_arguments({key: value})[0]] = sources[key]
            continue
        items = _base_list(match.group(1), raw_base, sources[key], locations)
        problem = count_problem(value, items, f"the base scenario's {match.group(1)}")
        if problem:
            raise ScenarioError(locations.problem(sources[key], problem))
        cuts[override_arguments({match.group(1): items[:value]})[0]] = sources[key]
    return cuts, others


def _base_list(path: str, raw_base: dict, source: tuple, locations: Locations) -> list:
    try:
        container, slot, _ = locate(raw_base, parse_override(f"{path}=0"))
        items = container[slot]
    except (ScenarioError, KeyError, IndexError, TypeError):
        items = None
    if not isinstance(items, list):
        raise ScenarioError(locations.problem(source, f"the base scenario has no list {path!r} to take items from"))
    return items


def _load_placed(scenario_path: Path, arguments: list[str], sources: dict, locations: Locations,
                 prefix: str = ""):
    """Load with overrides; a problem an override caused is placed at its line in the sweep file."""
    try:
        return load(scenario_path, arguments)
    except ScenarioError as exc:
        placed = []
        for problem in exc.problems:
            culprit = max((a for a in sources if problem.startswith(f"--set {a}:")), key=len, default=None)
            where = locations.origin(sources[culprit]) if culprit else locations.origin(("scenario",))
            key = format_path(sources[culprit]) if culprit else "scenario"
            placed.append(f"{where}: {key}: {prefix}{problem}")
        raise ScenarioError(*placed) from None


def _check_metrics(spec: SweepSpec, base, locations: Locations) -> None:
    """A metric is a run metric, or `<component>.<counter>` of a bus or driver of the base scenario."""
    owners = {bus.name for bus in base.buses} | {driver.name for driver in base.drivers}
    named = [(("metrics", index), metric) for index, metric in enumerate(spec.metrics)]
    if spec.target is not None:
        named.append((("target", "metric"), spec.target.metric))
    advice = (f"use one of {', '.join(RUN_METRICS)} or <component>.<counter> of "
              f"{', '.join(sorted(owners))} (e.g. a queue's utilisation)")
    problems = [(path, f"unknown metric {metric!r}: {advice}") for path, metric in named
                if metric not in RUN_METRICS and metric.split(".")[0] not in owners]
    if problems:
        raise ScenarioError(*locations.problems(problems))


def offered_rps(scenario) -> float:
    """Requests per second the open-loop workloads offer; NaN when a closed loop or a trace sets the pace."""
    rates = [getattr(workload.arrivals, "rate", None) for workload in scenario.workloads]
    if not rates or None in rates:
        return math.nan
    return float(sum(rates))


def derive_seed(base_seed: int, replication: int, point_identity: int | None = None) -> int:
    """The run seed of one replication (of one point when the point's identity is given), below 2**63."""
    entropy = [base_seed, replication] if point_identity is None else [base_seed, replication, point_identity]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _point_identity(point: dict) -> int:
    return zlib.crc32(json.dumps(point, sort_keys=True, default=str).encode())


def _task_key(scenario: dict) -> str:
    text = json.dumps({"scenario": scenario, "vmsim": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]
