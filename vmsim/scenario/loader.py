"""Scenario files in, validated `Scenario` out, with every problem placed at file:line: key.

The steps, in order: read YAML (remembering lines), default `name` to the file stem, apply
`--set` overrides, resolve the platform profile (stripping citations into provenance), validate
with pydantic, then check the topology and read trace files. Each step reports all of its
problems at once in one `ScenarioError`, one self-contained line per problem; a later step runs
only on what the earlier ones accepted, so one typo never shows up as a cascade.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
from pydantic import ValidationError

from vmsim import topology
from vmsim.errors import ScenarioError
from vmsim.scenario.locations import Locations, Origin, read_yaml
from vmsim.scenario.models import Platform, Scenario
from vmsim.scenario.overrides import Override, locate, parse_override
from vmsim.scenario.platform import fill_default_provenance, resolve_platform, strip_citations
from vmsim.scenario.schema_problems import at_most, schema_problems
from vmsim.scenario.trace import Trace, read_trace


@dataclass(frozen=True)
class Checked:
    """A scenario that passed every check, with what checking it built: its topology graph and its
    parsed trace files (by workload name), so that a run builds and reads each of them once."""

    scenario: Scenario
    graph: nx.DiGraph
    traces: dict[str, Trace]


def load(path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read, override, validate and check a scenario file; raise `ScenarioError` on any problem."""
    return load_checked(path, overrides).scenario


def load_dict(
    data: dict, source: str = "<dict>", overrides: Sequence[str] = (), base_dir: str | Path | None = None
) -> Scenario:
    """Like `load` for a mapping built in code; `source` names it in messages, relative profile and
    trace paths are taken from `base_dir` (default: the working directory). `data` is not modified."""
    return load_checked_dict(data, source, overrides, base_dir).scenario


def load_checked(path: str | Path, overrides: Sequence[str] = ()) -> Checked:
    """`load`, keeping the graph and traces the checks built (what a run needs next)."""
    path = Path(path)
    data, locations = read_yaml(path, str(path))
    if isinstance(data, dict) and "name" not in data:
        data["name"] = _name_from(path.stem)
    return _assemble(data, locations, path.parent, overrides)


def load_checked_dict(
    data: dict, source: str = "<dict>", overrides: Sequence[str] = (), base_dir: str | Path | None = None
) -> Checked:
    """`load_dict`, keeping the graph and traces the checks built."""
    base = Path.cwd() if base_dir is None else Path(base_dir)
    return _assemble(copy.deepcopy(data), Locations(Origin(source)), base, overrides)


def load_platform(reference: str | Path) -> Platform:
    """A platform profile on its own (a shipped name or a path), provenance filled: for notebooks
    that compare platforms and for checking a new profile before any scenario uses it."""
    locations = Locations(Origin(str(reference)))
    data = resolve_platform(str(reference), Path.cwd(), locations, str(reference))
    try:
        platform = Platform.model_validate(data)
    except ValidationError as exc:
        found, left_out = schema_problems(exc, {"platform": data}, locations, Scenario, loc_prefix=("platform",))
        raise ScenarioError(*at_most(found, locations, left_out)) from None
    fill_default_provenance(platform)
    return platform


def resolved_dict(scenario: Scenario) -> dict:
    """The scenario as plain YAML-able data (ints in ns and bytes); loading it back gives an equal one.

    The platform is written inline with its provenance, so the file stands alone; trace paths are
    already absolute.
    """
    return scenario.model_dump(mode="json")


def _assemble(data: object, locations: Locations, base_dir: Path, arguments: Sequence[str]) -> Checked:
    if not isinstance(data, dict):
        raise ScenarioError(
            locations.problem(
                (), f"the top level must be a mapping of scenario keys, not a {type(data).__name__}"
            )
        )
    problems: list[str] = []
    overrides = []
    for argument in arguments:
        try:
            overrides.append(parse_override(argument))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    early = [o for o in overrides if o.keys[0] == "platform" and o.keys[1:2] in ((), ("profile",))]
    late = [o for o in overrides if o not in early]
    if isinstance(data.get("platform"), str):
        data["platform"] = {"profile": data["platform"]}
    _apply(data, early, locations, problems)
    platform_ok = True  # False once the platform's own problems are reported: the schema's would repeat them
    if "platform" in data:
        try:
            data["platform"] = resolve_platform(
                data["platform"], base_dir, locations, str(locations.default.source)
            )
        except ScenarioError as exc:
            problems.extend(exc.problems)
            platform_ok = False
    _apply(data, [o for o in late if platform_ok or o.keys[0] != "platform"], locations, problems)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        found, left_out = schema_problems(exc, data, locations, Scenario, reported=() if platform_ok else ("platform",))
        raise ScenarioError(*at_most(problems + found, locations, left_out)) from None
    if problems:
        raise ScenarioError(*at_most(problems, locations))
    fill_default_provenance(scenario.platform)
    traces, trace_problems = _load_traces(scenario, base_dir, locations)  # first: the checks read their sizes
    graph = topology.build_graph(scenario)
    problems = locations.problems(topology.problems(scenario, graph)) + trace_problems
    if problems:
        raise ScenarioError(*at_most(problems, locations))
    return Checked(scenario, graph, traces)


def _apply(data: dict, overrides: list[Override], locations: Locations, problems: list[str]) -> None:
    """Write each override into `data`; platform values are recorded in its provenance."""
    for override in overrides:
        try:
            container, slot, path = locate(data, override)
            value = override.value_over(container, slot)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        if path[0] == "platform" and len(path) > 1 and "provenance" in data["platform"]:
            provenance = data["platform"]["provenance"]
            replaced = ".".join(map(str, path[1:]))
            for key in [k for k in provenance if k == replaced or k.startswith(replaced + ".")]:
                del provenance[key]  # the value they cited is gone
            value = strip_citations(
                value,
                path[1:],
                ("platform",),
                locations,
                provenance,
                f"override: {override.label}",
                problems,
            )
        container[slot] = value
        locations.reset(path, Origin(override.label))
        if path == ("platform",) and isinstance(value, str):
            data["platform"] = {"profile": value}


def _load_traces(scenario: Scenario, base_dir: Path, locations: Locations) -> tuple[dict[str, Trace], list[str]]:
    """Resolve each trace path against the scenario's folder (stored absolute) and read the file:
    the traces by workload name, and the problems found."""
    traces: dict[str, Trace] = {}
    problems = []
    for index, workload in enumerate(scenario.workloads):
        if workload.arrivals.kind != "trace":
            continue
        path = (base_dir / workload.arrivals.file).expanduser().resolve()
        key = ("workloads", index, "arrivals", "file")
        if not path.exists():
            problems.append(
                locations.problem(key, f"trace file {workload.arrivals.file!r} not found (looked for {path})")
            )
            continue
        try:
            traces[workload.name] = read_trace(path)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        workload.arrivals.file = str(path)
    return traces, problems


def _name_from(stem: str) -> str:
    """A file stem made into a valid scenario name ("2 buses.v2" -> "_2_buses_v2")."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", stem)
    if not re.match(r"[A-Za-z_]", name):
        name = "_" + name
    return name[:64]
