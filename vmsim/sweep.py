"""Capacity studies: a base scenario run over a grid of overrides, with replications, resumable.

A sweep file names a base scenario, the parameters that make each point (dotted `--set` keys, as
a grid, a zip or an explicit list), how many replications of each point to run and the metrics to
summarise. Every (point, replication) is one run of the usual pipeline, in memory; its summary is
flattened to one row of metrics and written to `<out>/points/<point>-<replication>.json` the moment
it finishes (temporary file, fsync, rename), by the process that drives the sweep. Killing the
sweep loses at most the runs in flight: the same command run again skips every run whose record is
there, intact (its checksum holds) and of an unchanged fully resolved scenario (seed included); a
damaged record is reported and its run done again. A run that raises is recorded with its error while
the others go on, and is tried again by the next invocation.

Seeds: replication r of every point runs with the same seed, derived from (base seed, r), and each
component draws from its own stream seeded from that seed and its dotted name. So all points share
common random numbers and differences between points are not drowned in sampling noise. With
`common_random_numbers: false` the point's parameters enter the seed as well.

Executors: `inline` (this process, for debugging), `process` (a local pool, one worker per core,
the default; its workers die with the sweep, even one killed with -9) and `dask` (a local Dask
cluster, or an existing one given its scheduler address). A run is a pure function of its task, so every
executor gives the same numbers.
"""

from __future__ import annotations

import asyncio
import ctypes
import difflib
import hashlib
import itertools
import json
import math
import os
import re
import signal
import sys
import threading
import time
import types
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vmsim import __version__
from vmsim.analysis.stats import t_quantile
from vmsim.api import override_arguments
from vmsim.errors import ScenarioError, VmsimError
from vmsim.results import json_ready, summarize
from vmsim.scenario import load, load_dict, read_trace, resolved_dict
from vmsim.scenario.locations import Locations, Origin, format_path, read_yaml
from vmsim.scenario.overrides import locate, parse_override
from vmsim.sim import build
from vmsim.units import format_ns, parse_time_ns

RESULTS_ROOT = Path("results")
EXECUTORS = ("inline", "process", "dask")
MARKER_FILE = "sweep.json"
POINTS_FOLDER = "points"
LATENCY_STATISTICS = ("mean", "p50", "p90", "p99", "p999", "max")
RUN_METRICS = ("offered_rps", "throughput_rps", "requests_total", "requests_completed",
               *(f"latency_{statistic}_ns" for statistic in LATENCY_STATISTICS))
DEFAULT_METRICS = ["throughput_rps", "latency_mean_ns", "latency_p99_ns"]
KEPT_UP = 0.98  # throughput / offered load at or above which the system keeps up (see `knee`)
_LENGTH_KEY = re.compile(r"len\((.+)\)")
_MAX_PROBLEMS = 10
SCHEDULER_TIMEOUT_S = 20.0  # a Dask scheduler that has not answered by then is reported, not waited for
_SCHEDULER_ADDRESS = re.compile(
    r"(?:(?:tcp|tls|ws|wss|ucx)://)?"
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)"
    r":(?P<port>[0-9]{1,5})")
RECORD_FIELDS = frozenset({"point", "replication", "seed", "key", "parameters", "status", "error", "metrics",
                           "wall_seconds", "checksum"})
MAX_RECORD_BYTES = 16 * 2**20  # far above any record (a few kB); a larger file is not one
STALE = "stale"  # what `record_problem` says of a record of another scenario, seed or vmsim


# --- the sweep file -----------------------------------------------------------------------------


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


class SweepSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=64)
    description: str = ""
    scenario: str
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    replications: int = Field(default=5, ge=1, le=10_000)
    common_random_numbers: bool = True
    set: dict[str, Any] = Field(default_factory=dict)
    parameters: Parameters = Field(default_factory=Parameters)
    metrics: list[str] = Field(default_factory=lambda: list(DEFAULT_METRICS), min_length=1)
    target: Target | None = None


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

    def describe(self) -> dict:
        """What ran, as JSON: the marker file of a sweep folder."""
        return json_ready({
            "name": self.name, "description": self.description, "scenario": self.scenario_path,
            "base_seed": self.base_seed, "replications": self.replications,
            "common_random_numbers": self.common_random_numbers, "metrics": self.metrics,
            "target": None if self.target is None else self.target.model_dump(),
            "points": [{"point": index, "parameters": point, "offered_rps": offered}
                       for index, (point, offered) in enumerate(zip(self.points, self.offered_rps))],
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
        raise ScenarioError(*_schema_problems(exc, locations)) from None
    return _plan(spec, folder / spec.scenario, locations)


def _schema_problems(exc: ValidationError, locations: Locations) -> list[str]:
    found = []
    for error in exc.errors():
        path = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(path[-1]), _fields_at(path[:-1]), n=1)
            message = f"unknown key {path[-1]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
        elif error["type"] == "missing":
            message = "missing required key"
        else:
            message = error["msg"].removeprefix("Value error, ")
        found.append((path, message))
    return locations.problems(found)


def _fields_at(path: tuple) -> list[str]:
    model: type[BaseModel] = SweepSpec
    for part in path:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


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
    points = spec.parameters.expand()
    keys = spec.parameters.keys()
    point_sources = {key: _parameter_location(spec.parameters, key) for key in keys}
    problems: list[str] = []
    resolved: list[dict] = []
    offered: list[float] = []
    for index, point in enumerate(points):
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
                 keys, points, offered, metrics, spec.target, tasks)


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
        match = _LENGTH_KEY.fullmatch(key)
        if match is None:
            others[override_arguments({key: value})[0]] = sources[key]
            continue
        items = _base_list(match.group(1), raw_base, sources[key], locations)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= len(items):
            raise ScenarioError(locations.problem(
                sources[key], f"{value!r} is not a count from 1 to {len(items)} (the base scenario's "
                              f"{match.group(1)} has {len(items)})"))
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


# --- one run ------------------------------------------------------------------------------------


def run_point(task: Task) -> dict:
    """Run one (point, replication) and return its record; a failing run returns its error instead.

    Top-level and free of open resources so process pools and Dask can ship it to a worker.
    """
    started = time.perf_counter()
    try:
        metrics, error = _simulate(task.scenario), None
    except Exception as exc:  # noqa: BLE001 - a point's failure is its result; the sweep goes on
        metrics, error = {}, _one_line(exc)
    return _record(task, metrics, error, time.perf_counter() - started)


def _record(task: Task, metrics: dict, error: str | None, wall_seconds: float | None) -> dict:
    """What `points/<point>-<replication>.json` holds; strict JSON (NaN written as null).

    A record names the run it stands for (point, replication, seed and the key of its resolved scenario)
    and carries a checksum of all that and its results, so a resumed sweep trusts only what it wrote.
    """
    record = json_ready({"point": task.point, "replication": task.replication, "seed": task.seed, "key": task.key,
                         "parameters": task.parameters, "status": "ok" if error is None else "error",
                         "error": error, "metrics": metrics,
                         "wall_seconds": None if wall_seconds is None else round(wall_seconds, 4)})
    return {**record, "checksum": record_checksum(record)}


def record_checksum(record: Mapping) -> str:
    """sha256 of the record's canonical JSON (sorted keys, no spaces), its checksum left out."""
    content = {key: value for key, value in record.items() if key != "checksum"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def record_problem(record: object, task: Task) -> str | None:
    """Why a record read back from disk cannot stand for `task`'s run, or None when it can.

    The shape is checked first (so nothing below trips over a list or a missing field), then the checksum
    (an edited metric is caught), then that the record is the run its file name says. A record of
    another scenario or seed (the sweep changed since), or from before records had a checksum, is
    `STALE`: expected, not damage.
    """
    if not isinstance(record, dict):
        kind = {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(record), "number")
        return f"holds a JSON {kind}, not a record"
    if set(record) == RECORD_FIELDS - {"checksum"}:
        return STALE  # written before records carried checksums: run again, as after an upgrade
    if set(record) != RECORD_FIELDS:
        missing, unknown = sorted(RECORD_FIELDS - set(record)), sorted(set(record) - RECORD_FIELDS)
        return "; ".join([*([f"lacks {', '.join(missing)}"] if missing else []),
                          *([f"has unknown fields {', '.join(unknown)}"] if unknown else [])])
    if record["checksum"] != record_checksum(record):
        return "its checksum does not match its content (edited or damaged)"
    shape = _shape_problem(record)
    if shape is not None:
        return shape
    if (record["point"], record["replication"]) != (task.point, task.replication):
        return (f"holds point {record['point']} replication {record['replication']}, "
                f"not point {task.point} replication {task.replication} as its name says")
    if (record["key"], record["seed"]) != (task.key, task.seed):
        return STALE
    return None


def _shape_problem(record: dict) -> str | None:
    def integer(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def number(value) -> bool:
        return value is None or isinstance(value, (int, float)) and not isinstance(value, bool)

    if not (integer(record["point"]) and integer(record["replication"]) and integer(record["seed"])):
        return "point, replication and seed must be integers"
    if not isinstance(record["key"], str) or record["status"] not in ("ok", "error"):
        return "key must be a string and status ok or error"
    if not (record["error"] is None or isinstance(record["error"], str)) or not number(record["wall_seconds"]):
        return "error must be a string or null and wall_seconds a number"
    metrics = record["metrics"]
    if not isinstance(metrics, dict) or not all(number(value) for value in metrics.values()):
        return "metrics must map names to numbers"
    return None


def _simulate(scenario_data: dict) -> dict:
    """The `vmsim.run` pipeline in memory (no folder, plots or trace), flattened to metrics."""
    scenario = load_dict(scenario_data, source=f"scenario {scenario_data.get('name')}")
    traces = {w.name: read_trace(w.arrivals.file) for w in scenario.workloads if w.arrivals.kind == "trace"}
    started = time.perf_counter()
    output = build(scenario, traces=traces).run()
    summary = summarize(output, wall_seconds=time.perf_counter() - started, version=__version__)
    return flat_metrics(summary, offered_rps(scenario))


def flat_metrics(summary: dict, offered: float) -> dict[str, float]:
    """A run summary as one flat row: run metrics, then `<component>.<counter>` for every numeric counter."""
    latency = summary["latency_ns"]
    metrics = {"offered_rps": offered, "throughput_rps": summary["throughput_rps"],
               "requests_total": summary["requests_total"], "requests_completed": summary["requests_completed"],
               **{f"latency_{statistic}_ns": latency[statistic] for statistic in LATENCY_STATISTICS}}
    counters = dict(summary["other_counters"])
    for bus, entry in summary["buses"].items():
        counters[bus] = {**entry["counters"], "frames": entry["frames"], "bytes": entry["bytes"],
                         "utilisation_max": entry["utilisation_max"]}
        for group in ("queues", "doorbells", "devices"):
            counters.update(entry[group])
    for component, counts in sorted(counters.items()):
        for counter, value in counts.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"{component}.{counter}"] = value
    return metrics


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


# --- executors ----------------------------------------------------------------------------------


def _executor(name: str, workers: int | None, scheduler: str | None) -> Callable[[list[Task]], Iterator[dict]]:
    """The executor as a function from tasks to records in completion order; checked before anything runs."""
    if scheduler is not None and name == "process":
        name = "dask"  # a scheduler address only means something to Dask
    if name not in EXECUTORS:
        raise VmsimError(f"unknown executor {name!r} (use one of {', '.join(EXECUTORS)})")
    if scheduler is not None and name != "dask":
        raise VmsimError(f"--scheduler needs --executor dask, not {name}")
    if workers is not None and workers < 1:
        raise VmsimError(f"--workers must be at least 1, not {workers}")
    if scheduler is not None:
        check_scheduler_address(scheduler)
    count = workers or os.cpu_count() or 1
    if name == "inline":
        return lambda tasks: map(run_point, tasks)
    if name == "process":
        return lambda tasks: _on_process_pool(tasks, min(count, max(len(tasks), 1)))
    return lambda tasks: _on_dask(tasks, count, scheduler)


def check_scheduler_address(address: str) -> None:
    """A Dask scheduler address is `[tcp|tls|ws|wss|ucx://]HOST:PORT`; anything else is refused up front."""
    match = _SCHEDULER_ADDRESS.fullmatch(address)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise VmsimError(f"--scheduler {address!r} is not a Dask scheduler address "
                         "(write tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786)")


def _start_worker(parent_pid: int) -> None:
    """A pool worker leaves Ctrl-C to the sweep, which stops it (else each prints its own traceback), and
    dies with the sweep: a sweep killed with -9 cannot stop its workers, which would sleep on forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int, poll_seconds: float = 0.2) -> None:
    """End this process when the process `parent_pid` that started it ends, however it ends.

    On Linux the kernel sends SIGKILL at the parent's death (prctl PR_SET_PDEATHSIG); everywhere a daemon
    thread also watches for this process being handed to another parent, and exits. A parent that died
    before this call is noticed at once. With the `forkserver` start method the parent is the fork
    server, which itself ends with the sweep.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl (an unusual libc): the watching thread alone ends the worker
    import multiprocessing

    if multiprocessing.get_start_method() == "forkserver":
        parent_pid = os.getppid()
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="vmsim-watch-parent", daemon=True).start()


def _on_process_pool(tasks: list[Task], workers: int) -> Iterator[dict]:
    from concurrent.futures import ProcessPoolExecutor

    # Started before the caller opens its progress bar, whose monitor thread a forked worker need not copy.
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_start_worker, initargs=(os.getpid(),))
    return _pool_results(pool, [pool.submit(run_point, task) for task in tasks])


def _pool_results(pool, futures: list) -> Iterator[dict]:
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    try:
        for future in as_completed(futures):
            try:
                record = future.result()
            except BrokenProcessPool:
                raise VmsimError("a worker process died (killed, or out of memory); the finished runs are kept: "
                                 "run the same command again to resume") from None
            yield record
    except BaseException:
        # Interrupted: runs in flight are abandoned, not awaited; the next invocation redoes them.
        for process in list((pool._processes or {}).values()):  # Python 3.14: pool.terminate_workers()
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _on_dask(tasks: list[Task], workers: int, scheduler: str | None) -> Iterator[dict]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise VmsimError("--executor dask needs Dask: pip install 'vmsim[dask]'") from None
    import logging

    if scheduler is not None:
        client, cluster = connect_scheduler(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        try:
            client = Client(cluster, timeout=SCHEDULER_TIMEOUT_S)
        except BaseException:
            cluster.close()
            raise
    return _dask_results(client, cluster, {client.submit(run_point, task, pure=False): task for task in tasks})


def connect_scheduler(address: str, timeout_s: float | None = None):
    """A Dask client of the scheduler at `address`, or a one-line `VmsimError` once `timeout_s` seconds
    (default `SCHEDULER_TIMEOUT_S`) have passed without a Dask answer.

    Dask bounds the TCP connect but not the handshake after it, so a port that accepts and never speaks
    (not a scheduler, or a hung one) would hold `Client()` for good: the handshake is tried first, in a
    thread of its own (a notebook's event loop may be running in this one) and under a deadline.
    """
    from concurrent.futures import ThreadPoolExecutor

    from distributed import Client
    from distributed.comm import connect

    timeout_s = SCHEDULER_TIMEOUT_S if timeout_s is None else timeout_s

    async def handshake() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=timeout_s), timeout_s)
        await comm.close()

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="vmsim-scheduler-handshake") as probe:
            probe.submit(asyncio.run, handshake()).result()
        return Client(address, timeout=timeout_s)
    except TimeoutError:
        raise VmsimError(f"the Dask scheduler at {address} did not answer within {timeout_s:g} s "
                         "(is a Dask scheduler listening there?)") from None
    except Exception as exc:  # noqa: BLE001 - whatever a wrong address gives back, it is the user's to fix
        raise VmsimError(f"cannot reach the Dask scheduler at {address}: {_one_line(exc)}") from None


def _dask_results(client, cluster, futures: dict) -> Iterator[dict]:
    from distributed import as_completed

    try:
        for future in as_completed(list(futures)):
            try:
                record = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: this run kept taking its worker down
                record = _record(futures[future], {}, _one_line(exc), None)
            yield record
    finally:
        client.cancel(list(futures))
        client.close()
        if cluster is not None:
            cluster.close()


# --- the sweep folder ---------------------------------------------------------------------------


def write_file_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """`write(temporary)` then rename over `path`: a reader or a crash sees the old file or the new one.

    The data is flushed to disk before the rename, so a machine restart cannot leave a named but empty file.
    """
    temporary = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        write(temporary)
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


class SweepFolder:
    """`<out>/`: the marker `sweep.json`, one record file per finished run, and the tables built from them."""

    def __init__(self, folder: Path):
        """Refuse, before anything runs, a folder that holds something other than a sweep, and a sweep
        whose `points` is not a folder: vmsim deletes nothing it did not write."""
        if folder.exists() and (not folder.is_dir() or (any(folder.iterdir())
                                                        and not (folder / MARKER_FILE).is_file())):
            raise VmsimError(f"{folder}: exists and is not a vmsim sweep folder (no {MARKER_FILE}); "
                             "choose another --out or remove it")
        self.folder = folder
        self.points = folder / POINTS_FOLDER
        if os.path.lexists(self.points) and not self.points.is_dir():
            raise VmsimError(f"{self.points}: is not a folder, where the sweep keeps one record per run; "
                             "move it away or choose another --out")

    def open(self, sweep: Sweep) -> None:
        """Create the folder (once the executor is up, so a failed start writes nothing) and its marker."""
        self.points.mkdir(parents=True, exist_ok=True)
        for leftover in self.points.glob(".*.tmp-*"):
            leftover.unlink(missing_ok=True)
        self.write_json(self.folder / MARKER_FILE, sweep.describe())

    def finished(self, tasks: list[Task]) -> dict[tuple[int, int], dict]:
        """Records of runs already done, each checked (`record_problem`): same run, same scenario and seed,
        checksum intact, no error. A damaged record is named in a warning and its run done again; records
        of an earlier version of the sweep are counted in one line."""
        done, stale = {}, 0
        for task in tasks:
            path = self.points / task.file_name
            if not os.path.lexists(path):
                continue
            if not path.is_file():
                raise VmsimError(f"{path}: is not a regular file, where the sweep keeps a run's record; "
                                 "move it away")
            record, problem = _read_record(path, task)
            if problem == STALE:
                stale += 1
            elif problem is not None:
                _warn(f"{path}: {problem}; not trusted: the run is done again")
            elif record["status"] == "ok":
                done[task.point, task.replication] = record
        if stale:
            _warn(f"{stale} record{'s' if stale > 1 else ''} in {self.points} written for another scenario, "
                  "seed or vmsim version: running them again")
        return done

    def save(self, record: dict) -> None:
        """Write a run's record as it finishes (temporary file, fsync, rename)."""
        self.write_json(self.points / record_file_name(record["point"], record["replication"]), record)

    @staticmethod
    def write_json(path: Path, data: dict) -> None:
        write_file_atomically(path, lambda temporary: temporary.write_text(json.dumps(data, indent=1) + "\n"))


def _read_record(path: Path, task: Task) -> tuple[dict | None, str | None]:
    """The record at `path` and why it cannot stand for `task`'s run (None when it can)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_RECORD_BYTES + 1)
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    if len(data) > MAX_RECORD_BYTES:
        return None, f"larger than any record (over {MAX_RECORD_BYTES // 2**20} MiB)"
    try:
        record = json.loads(data, parse_constant=_not_json)
        return record, record_problem(record, task)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to read or to hash
        return None, f"not a JSON record ({_one_line(exc)})"


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not strict JSON")


def _warn(message: str) -> None:
    """A problem vmsim works around, on one line of stderr."""
    print(f"vmsim: warning: {' '.join(message.split())}", file=sys.stderr)


# --- tables -------------------------------------------------------------------------------------


def points_frame(sweep: Sweep, records: Iterable[dict]) -> pd.DataFrame:
    """One row per (point, replication): parameters, status, error and every metric (NaN for a failed
    run, except the offered load, which the point itself sets)."""
    records = sorted(records, key=lambda record: (record["point"], record["replication"]))
    numeric = {key: all(isinstance(point.get(key), (int, float)) and not isinstance(point.get(key), bool)
                        for point in sweep.points) for key in sweep.parameters}
    rows = []
    for record in records:
        point = sweep.points[record["point"]]
        row = {"point": record["point"], "replication": record["replication"], "seed": record["seed"]}
        row.update({key: point.get(key) if numeric[key] else yaml_text(point.get(key)) for key in sweep.parameters})
        row.update(status=record["status"], error=record["error"])
        rows.append((row, {**record["metrics"], "offered_rps": sweep.offered_rps[record["point"]]}))
    names = set().union(*(metrics for _, metrics in rows))
    metric_columns = [m for m in RUN_METRICS if m in names] + sorted(names - set(RUN_METRICS))
    frame = pd.DataFrame([{**row, **{m: metrics.get(m) for m in metric_columns}} for row, metrics in rows],
                         columns=["point", "replication", "seed", *sweep.parameters, "status", "error",
                                  *metric_columns])
    frame[metric_columns] = frame[metric_columns].astype(float)
    return frame


def summary_table(points: pd.DataFrame, metrics: Iterable[str], parameters: Iterable[str] = ()) -> pd.DataFrame:
    """Per point: its parameters, offered load, runs that succeeded and failed, and for each metric the
    mean over the replications with a 95% confidence interval (Student t, n - 1 degrees of freedom;
    NaN for n < 2) as `<metric>_mean`, `<metric>_low`, `<metric>_high`."""
    metrics = list(dict.fromkeys(metrics))
    parameters = list(parameters)
    missing = [metric for metric in metrics if metric not in points.columns]
    if missing and (points["status"] == "ok").any():
        known = [c for c in points.columns if c not in ("point", "replication", "seed", "status", "error",
                                                         *parameters)]
        raise VmsimError(f"no metric {', '.join(map(repr, missing))} in the results (they have "
                         f"{', '.join(known[:30])}{', ...' if len(known) > 30 else ''})")
    rows = []
    for point, runs in points.groupby("point", sort=True):
        ok = runs[runs["status"] == "ok"]
        row = {"point": point, **{key: runs[key].iloc[0] for key in parameters},
               "offered_rps": runs["offered_rps"].iloc[0], "replications": len(ok), "failed": len(runs) - len(ok)}
        for metric in metrics:
            values = ok[metric].dropna().to_numpy(dtype=float) if metric in ok else np.empty(0)
            row.update(_mean_interval(metric, values))
        rows.append(row)
    return pd.DataFrame(rows)


def _mean_interval(metric: str, values: np.ndarray) -> dict[str, float]:
    mean = float(values.mean()) if values.size else math.nan
    half = t_quantile(0.975, values.size - 1) * float(values.std(ddof=1)) / math.sqrt(values.size) \
        if values.size >= 2 else math.nan
    return {f"{metric}_mean": mean, f"{metric}_low": mean - half, f"{metric}_high": mean + half}


def yaml_text(value: object) -> str:
    """A parameter value as its sweep file spelled it: '64 B', 'null', '[1, 2]'."""
    return yaml.safe_dump(value, default_flow_style=True, width=2**31).strip().removesuffix("...").strip()


# --- reading a sweep: axes, knee, capacity ------------------------------------------------------


@dataclass(frozen=True)
class Axes:
    """What the plots put along x (offered load, else the first parameter that varies) and which
    parameters draw separate lines: those whose every value covers the same x values."""

    x: str
    series: list[str]

    @classmethod
    def of(cls, summary: pd.DataFrame, parameters: list[str]) -> Axes:
        varying = [key for key in parameters if summary[key].astype(str).nunique() > 1]
        offered = summary["offered_rps"]
        if offered.notna().all() and offered.nunique() > 1:
            return cls("offered_rps", [key for key in varying if _independent_of(summary, key, offered)])
        if not varying:
            return cls("point", [])
        return cls(varying[0], varying[1:])

    @property
    def x_label(self) -> str:
        return "offered load (requests/s)" if self.x == "offered_rps" else self.x

    def groups(self, summary: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
        """(label, rows sorted by x) per series; one unlabelled group when nothing but x varies."""
        if not self.series:
            yield "", summary.sort_values(self.x, kind="stable")
            return
        for values, rows in summary.groupby([summary[key].astype(str) for key in self.series], sort=False):
            values = values if isinstance(values, tuple) else (values,)
            label = ", ".join(f"{key.split('.')[-1]}={value}" for key, value in zip(self.series, values))
            yield label, rows.sort_values(self.x, kind="stable")


def _independent_of(summary: pd.DataFrame, key: str, offered: pd.Series) -> bool:
    loads = [frozenset(offered[rows.index]) for _, rows in summary.groupby(summary[key].astype(str))]
    return all(load == loads[0] for load in loads)


def knee(rows: pd.DataFrame) -> float | None:
    """The highest offered load up to which the system keeps up; past it, it saturates.

    Falling behind takes both: mean throughput more than 2% below the offered load (requests still in
    flight when a run ends are not counted, so a system that keeps up still measures a little short)
    and the 95% interval of throughput below the offered load (so it is not sampling noise).
    """
    kept = None
    for offered, mean, high in zip(rows["offered_rps"], rows["throughput_rps_mean"], rows["throughput_rps_high"]):
        if mean < KEPT_UP * offered and not high >= offered:
            break
        kept = offered
    return kept


def capacity(rows: pd.DataFrame, x: str, target: Target, bound: str = "mean") -> float | None:
    """The highest x up to which the target metric (its mean, or its 95% upper bound) meets the target."""
    met = None
    for value, measured in zip(rows[x], rows[f"{target.metric}_{bound}"]):
        if not measured <= target.at_most:
            break
        met = value
    return met


# --- reports ------------------------------------------------------------------------------------


def format_metric(metric: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if metric.endswith("_ns"):
        return format_ns(value)
    if metric.endswith("_rps"):
        return f"{value / 1e3:,.1f} k/s"
    if "utilisation" in metric:
        return f"{value:.1%}"
    return f"{value:.4g}"


def _with_interval(row, metric: str) -> str:
    mean, high = row[f"{metric}_mean"], row[f"{metric}_high"]
    text = format_metric(metric, mean)
    if isinstance(high, float) and not math.isnan(high):
        text += f" ± {format_metric(metric, high - mean)}"
    return text


def summary_markdown(sweep: Sweep, summary: pd.DataFrame, points: pd.DataFrame, plots: list[str]) -> str:
    """summary.md: the table of means and intervals, the knee and capacity per series, failures, plots."""
    axes = Axes.of(summary, sweep.parameters)
    ok = int((points["status"] == "ok").sum())
    lines = [f"# Sweep `{sweep.name}`", ""]
    if sweep.description:
        lines += [sweep.description, ""]
    crn = ", common random numbers" if sweep.common_random_numbers else ""
    lines += [(f"Base scenario `{os.path.normpath(sweep.scenario_path)}`; {len(sweep.points)} points x {sweep.replications} "
               f"replications = {len(points)} runs, {ok} ok, {len(points) - ok} failed; "
               f"base seed {sweep.base_seed}{crn}; vmsim {__version__}."),
              ("Each cell is the mean over the replications ± the half-width of its 95% confidence interval "
               "(Student t with replications - 1 degrees of freedom)."), ""]
    columns = ["point", *sweep.parameters, "offered", *sweep.metrics, "runs"]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, row in summary.iterrows():
        cells = [str(row["point"]), *(str(row[key]) for key in sweep.parameters),
                 format_metric("offered_rps", row["offered_rps"]),
                 *(_with_interval(row, metric) for metric in sweep.metrics),
                 f"{row['replications']}" + (f" ({row['failed']} failed)" if row["failed"] else "")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += _per_series(sweep, summary, axes) + _lowest_per_load(sweep, summary, axes)
    failed = points[points["status"] != "ok"]
    if len(failed):
        lines += ["", "## Failed runs", "", "| point | replication | seed | error |", "|---|---|---|---|"]
        lines += [f"| {row.point} | {row.replication} | {row.seed} | {row.error} |" for row in failed.itertuples()]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(name).stem}]({name})" for name in plots]
    return "\n".join(lines) + "\n"


def _per_series(sweep: Sweep, summary: pd.DataFrame, axes: Axes) -> list[str]:
    """Per series: the throughput knee and the capacity at the target, each with the parameters that
    set the load there (a device count reads better than a request rate)."""
    by_load = axes.x == "offered_rps"
    if not by_load and sweep.target is None:
        return []
    load_parameters = [key for key in sweep.parameters
                       if key not in axes.series and summary[key].astype(str).nunique() > 1]
    header = ["series"] + (["throughput knee"] if by_load else [])
    if sweep.target is not None:
        limit = format_metric(sweep.target.metric, sweep.target.at_most)
        header += [f"max {axes.x_label} with mean {sweep.target.metric} <= {limit}", "... with its 95% upper bound"]
    lines = ["", "## Per series", ""]
    if by_load:
        lines += [("Throughput knee: the highest offered load up to which mean throughput stays within "
                   f"{1 - KEPT_UP:.0%} of it or its 95% interval reaches it."), ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, rows in axes.groups(summary):
        cells = [label or "all"]
        if by_load:
            cells.append(_x_text(axes, knee(rows), rows, load_parameters))
        if sweep.target is not None:
            cells += [_x_text(axes, capacity(rows, axes.x, sweep.target, bound), rows, load_parameters)
                      for bound in ("mean", "high")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _x_text(axes: Axes, value, rows: pd.DataFrame | None = None, load_parameters: list[str] = ()) -> str:
    if value is None:
        return "-"
    if axes.x != "offered_rps":
        return str(value)
    text = format_metric("offered_rps", value)
    if rows is not None and load_parameters:
        row = rows[rows[axes.x] == value].iloc[0]
        text += " (" + ", ".join(f"{key}={row[key]}" for key in load_parameters) + ")"
    return text


def _lowest_per_load(sweep: Sweep, summary: pd.DataFrame, axes: Axes) -> list[str]:
    """Where series cross: the target metric of every series at each x, the lowest one named."""
    groups = list(axes.groups(summary))
    if sweep.target is None or len(groups) < 2:
        return []
    metric = sweep.target.metric
    by_x: dict = {}
    for label, rows in groups:
        for _, row in rows.iterrows():
            by_x.setdefault(row[axes.x], {})[label] = row
    labels = [label for label, _ in groups]
    lines = ["", f"## Lowest {metric} at each load", "",
             "| " + " | ".join([axes.x_label, *labels, "lowest"]) + " |", "|" + "---|" * (len(labels) + 2)]
    for x in sorted(by_x, key=lambda value: (isinstance(value, str), value)):
        present = by_x[x]
        best = min(present, key=lambda label: present[label][f"{metric}_mean"])
        cells = [_x_text(axes, x), *(_with_interval(present[label], metric) if label in present else "-"
                                     for label in labels), best]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _finish(folder: SweepFolder, sweep: Sweep, points: pd.DataFrame, plots: bool) -> None:
    """points.parquet, summary.csv, summary.md and the plots, each replaced atomically."""
    write_file_atomically(folder.folder / "points.parquet", lambda path: points.to_parquet(path, index=False))
    summary = summary_table(points, sweep.metrics, sweep.parameters)
    write_file_atomically(folder.folder / "summary.csv", lambda path: summary.to_csv(path, index=False))
    plotted = []
    if plots and (points["status"] == "ok").any():
        from vmsim.analysis.sweep_plots import save_sweep_plots

        plotted = save_sweep_plots(sweep, points, folder.folder)
    text = summary_markdown(sweep, _for_report(sweep, points), points, plotted)
    write_file_atomically(folder.folder / "summary.md", lambda path: path.write_text(text))


def _for_report(sweep: Sweep, points: pd.DataFrame) -> pd.DataFrame:
    """The summary with the throughput the knee needs besides the chosen metrics."""
    return summary_table(points, [*sweep.metrics, "throughput_rps"], sweep.parameters)


def format_report(sweep: Sweep, points: pd.DataFrame, folder: Path | None) -> str:
    """What `vmsim sweep` prints when done: summary.md without its plots, and where the results are."""
    text = summary_markdown(sweep, _for_report(sweep, points), points, [])
    return text + (f"\nresults    {folder}\n" if folder is not None else "")


# --- the entry point ----------------------------------------------------------------------------


def sweep(source: str | Path | Mapping | Sweep, *, out: str | Path | None = None, executor: str = "process",
          workers: int | None = None, scheduler: str | None = None, progress: bool | None = None,
          plots: bool = True, write: bool = True, fresh: bool = False) -> pd.DataFrame:
    """Run a sweep and return `points.parquet` as a DataFrame (one row per point and replication).

    source:    a sweep file, the same as a mapping (its scenario path taken from the working directory),
               or a `Sweep` from `load_sweep`.
    out:       the sweep folder (default results/<sweep name>/); finished runs found there are not redone.
    executor:  "inline" (this process), "process" (local pool, the default) or "dask".
    workers:   pool or local Dask cluster size (default: one per core).
    scheduler: address of a running Dask scheduler (tcp://host:port) instead of a local cluster.
    progress:  show a progress bar with ETA on stderr (default: when stderr is a terminal).
    plots:     draw latency, throughput and utilisation against offered load.
    write:     False keeps everything in memory: nothing written, nothing resumed.
    fresh:     redo every run, even those already in the folder (after changing the simulator itself).

    Every user error (sweep file, base scenario, an override of any point, executor) raises a
    `VmsimError` before anything runs. `summary_table(points, metrics)` gives means and intervals.
    """
    from tqdm import tqdm

    plan = source if isinstance(source, Sweep) else load_sweep(source)
    run_all = _executor(executor, workers, scheduler)
    folder = SweepFolder(Path(out) if out is not None else RESULTS_ROOT / plan.name) if write else None
    records = folder.finished(plan.tasks) if folder and not fresh else {}
    todo = [task for task in plan.tasks if (task.point, task.replication) not in records]
    failed = 0
    results = run_all(todo) if todo else iter(())
    if folder is not None:
        folder.open(plan)
    with tqdm(total=len(plan.tasks), initial=len(records), desc=plan.name, unit="run", file=sys.stderr,
              disable=None if progress is None else not progress, smoothing=0.1) as bar:
        for record in results:
            if folder is not None:
                folder.save(record)
            records[record["point"], record["replication"]] = record
            failed += record["status"] != "ok"
            bar.update(1)
            if failed:
                bar.set_postfix(failed=failed)
    points = points_frame(plan, records.values())
    if folder is not None:
        _finish(folder, plan, points, plots)
    return points


class _CallableModule(types.ModuleType):
    """`import vmsim.sweep` makes the package attribute `vmsim.sweep` this module, hiding the function
    that the package's lazy `vmsim.sweep` names; calling the module runs a sweep all the same."""

    def __call__(self, *args, **kwargs) -> pd.DataFrame:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
