"""Scenario files in, validated `Scenario` out, with every problem placed at file:line: key.

The steps, in order: read YAML (remembering lines), default `name` to the file stem, apply
`--set` overrides, resolve the platform profile (stripping citations into provenance), validate
with pydantic, then check the topology and read trace files. Each step reports all of its
problems at once in one `ScenarioError`, one self-contained line per problem; a later step runs
only on what the earlier ones accepted, so one typo never shows up as a cascade.
"""

from __future__ import annotations

import copy
import difflib
import re
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Union, get_args, get_origin

import networkx as nx
from pydantic import BaseModel, ValidationError

from vmsim import topology
from vmsim.errors import ScenarioError
from vmsim.scenario.locations import KeyPath, Locations, Origin, read_yaml
from vmsim.scenario.models import Platform, Scenario
from vmsim.scenario.overrides import Override, locate, parse_override
from vmsim.scenario.platform import fill_default_provenance, resolve_platform, strip_citations
from vmsim.scenario.trace import Trace, read_trace

MAX_PROBLEMS = 50  # lines of one ScenarioError; the rest are counted
_BRANCH_MISMATCH = {
    "string_type",
    "model_type",
    "dict_type",
    "int_type",
    "float_type",
    "bool_type",
    "list_type",
}


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
        found, left_out = _schema_problems(exc, {"platform": data}, locations, loc_prefix=("platform",))
        raise ScenarioError(*_at_most(found, locations, left_out)) from None
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
        found, left_out = _schema_problems(exc, data, locations, skip_platform=not platform_ok)
        raise ScenarioError(*_at_most(problems + found, locations, left_out)) from None
    if problems:
        raise ScenarioError(*_at_most(problems, locations))
    fill_default_provenance(scenario.platform)
    traces, trace_problems = _load_traces(scenario, base_dir, locations)  # first: the checks read their sizes
    graph = topology.build_graph(scenario)
    problems = locations.problems(topology.problems(scenario, graph)) + trace_problems
    if problems:
        raise ScenarioError(*_at_most(problems, locations))
    return Checked(scenario, graph, traces)


def _apply(data: dict, overrides: list[Override], locations: Locations, problems: list[str]) -> None:
    """Write each override into `data`; platform values are recorded in its provenance."""
    for override in overrides:
        try:
            container, slot, path = locate(data, override)
        except ScenarioError as exc:
            problems.extend(exc.problems)
            continue
        value = override.value
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


# --- pydantic errors -> file:line: key: message -------------------------------------------------


def _schema_problems(
    exc: ValidationError,
    data: dict,
    locations: Locations,
    skip_platform: bool = False,
    loc_prefix: tuple = (),
) -> tuple[list[str], int]:
    """One line per problem, and how many more were left out; union branches that merely failed to
    match are folded away.

    Only the first `MAX_PROBLEMS` in file order get a message (a suggestion costs a fuzzy match),
    then one line counts the rest: 200,000 unknown keys are reported in a second, not in minutes.
    `loc_prefix` places errors of a model validated on its own (a Platform) within the scenario."""
    entries: list[tuple[KeyPath, dict, bool]] = []
    for error in exc.errors(include_url=False):
        error["loc"] = loc_prefix + error["loc"]
        path, branch = _user_path(error["loc"], data)
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path += (error["ctx"]["discriminator"].strip("'"),)  # point at the `kind:`/`dist:` line
        if skip_platform and path[:1] == ("platform",):
            continue
        entries.append((path, error, branch and error["type"] in _BRANCH_MISMATCH))
    deeper = {path[:end] for path, *_ in entries for end in range(len(path))}
    errors: dict[KeyPath, list[dict]] = {}
    for path, error, branch in entries:
        if branch and path in deeper:
            continue  # another branch of the union got further: its error is the useful one
        errors.setdefault(path, []).append(error)
    in_file_order = sorted(errors, key=lambda path: _file_order(locations.origin(path)))
    shown = locations.problems([
        (path, "; or ".join(dict.fromkeys(_message(error) for error in errors[path])) + _given(errors[path][-1]))
        for path in in_file_order[:MAX_PROBLEMS]
    ])
    return shown, max(0, len(in_file_order) - MAX_PROBLEMS)


def _file_order(origin: Origin) -> tuple[str, int]:
    return origin.source, origin.line or 0


def _more(origin: Origin, hidden: int) -> str:
    return f"{origin.source}: ... and {hidden:,} more problems (the first {MAX_PROBLEMS} are shown)"


def _at_most(problems: list[str], locations: Locations, left_out: int = 0) -> list[str]:
    """The first `MAX_PROBLEMS` problems and a count of the rest, so that an error stays readable."""
    hidden = max(0, len(problems) - MAX_PROBLEMS) + left_out
    return problems[:MAX_PROBLEMS] + ([_more(locations.default, hidden)] if hidden else [])


def _user_path(loc: tuple, data: object) -> tuple[KeyPath, bool]:
    """Drop the union tags pydantic puts in `loc` ('amp', 'poisson', 'constrained-str') by walking
    the data: a part the data does not have is a tag, unless it is the last (a missing key).
    Returns the path and whether the error ends in a skipped tag (a failed union branch)."""
    path: list[str | int] = []
    node = data
    skipped_last = False
    for depth, part in enumerate(loc):
        last = depth == len(loc) - 1
        skipped_last = False
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and last and isinstance(part, str) and not _is_tag(node, part):
            path.append(part)
        else:
            skipped_last = True
    return tuple(path), skipped_last


def _is_tag(node: dict, part: str) -> bool:
    return part in node.values() or not re.fullmatch(r"[a-z_][a-z0-9_]*", part)


def _message(error: dict) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _valid_keys(loc[:-1]), n=1)
        return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return "missing required key"
    if kind == "union_tag_not_found":
        field = error["ctx"]["discriminator"].strip("'")
        return f"missing required key (one of {', '.join(sorted(_tags(_annotation_at(loc), field)))})"
    if kind == "union_tag_invalid":
        context = error["ctx"]
        return f"unknown value {context['tag']!r} (use one of {context['expected_tags']})"
    return error["msg"].removeprefix("Value error, ")


def _given(error: dict) -> str:
    """' (got 5000)' for a short scalar input; unit errors already quote it."""
    value = error.get("input")
    shown = error["type"] not in ("value_error", "missing", "extra_forbidden") and isinstance(
        value, (int, float, str)
    )
    return f" (got {value!r})" if shown and len(str(value)) <= 40 else ""


def _valid_keys(loc: tuple) -> list[str]:
    """The field names of the model at `loc` (raw pydantic loc, tags included), for suggestions."""
    model = _annotation_at(loc)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _annotation_at(loc: tuple) -> object:
    """The schema type at a raw pydantic `loc`, walking models, lists, dicts and union tags."""
    annotation: object = Scenario
    for part in loc:
        annotation = _step(annotation, part)
    return _bare(annotation)


def _step(annotation: object, part: str | int) -> object:
    annotation = _bare(annotation)
    if annotation is None:
        return None
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        members = [_bare(a) for a in get_args(annotation) if a is not type(None)]
        for member in members:
            if isinstance(member, type) and (member.__name__ == part or part in _tags(member)):
                return member
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if part in annotation.model_fields:
            return annotation.model_fields[part].annotation
        return annotation if part in _tags(annotation) else None
    if origin is list:
        return get_args(annotation)[0]
    if origin is dict:
        return get_args(annotation)[1]
    return None


def _bare(annotation: object) -> object:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _tags(annotation: object, only: str | None = None) -> set:
    """Literal values that pick a union member: of one model, or of every member of a union; `only`
    keeps those of one field (the discriminator)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return set().union(*(_tags(_bare(member), only) for member in get_args(annotation)))
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return set()
    return {
        value
        for name, field in annotation.model_fields.items()
        if get_origin(field.annotation) is Literal and only in (None, name)
        for value in get_args(field.annotation)
    }


def _name_from(stem: str) -> str:
    """A file stem made into a valid scenario name ("2 buses.v2" -> "_2_buses_v2")."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", stem)
    if not re.match(r"[A-Za-z_]", name):
        name = "_" + name
    return name[:64]
