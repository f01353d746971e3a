"""pydantic's validation errors as `file:line: key: message` lines: for scenarios, profiles and sweep files.

Each error is placed at the line of the key it names (union tags pydantic adds to its path are walked
away), unknown keys get a close match as a suggestion, and union branches that merely failed to match are
folded into the branch that got furthest, so one typo is one line.
"""

from __future__ import annotations

import difflib
import re
import types
from typing import Annotated, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from vmsim.scenario.locations import KeyPath, Locations, Origin

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


def schema_problems(
    exc: ValidationError,
    data: dict,
    locations: Locations,
    root: type[BaseModel],
    *,
    reported: tuple[str, ...] = (),
    loc_prefix: tuple = (),
) -> tuple[list[str], int]:
    """One line per problem, and how many more were left out; union branches that merely failed to
    match are folded away.

    `root` is the model validated (a Scenario, a sweep file): unknown keys are matched against its fields.
    Only the first `MAX_PROBLEMS` in file order get a message (a suggestion costs a fuzzy match),
    then one line counts the rest: 200,000 unknown keys are reported in a second, not in minutes.
    Problems under a top-level key in `reported` are left out (an earlier step reported that key's).
    `loc_prefix` places errors of a model validated on its own (a Platform) within the scenario."""
    entries: list[tuple[KeyPath, dict, bool]] = []
    for error in exc.errors(include_url=False):
        error["loc"] = loc_prefix + error["loc"]
        path, branch = _user_path(error["loc"], data)
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path += (error["ctx"]["discriminator"].strip("'"),)  # point at the `kind:`/`dist:` line
        if path[:1] and path[0] in reported:
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
        (path, "; or ".join(dict.fromkeys(_message(error, root) for error in errors[path])) + _given(errors[path][-1]))
        for path in in_file_order[:MAX_PROBLEMS]
    ])
    return shown, max(0, len(in_file_order) - MAX_PROBLEMS)


def _file_order(origin: Origin) -> tuple[str, int]:
    return origin.source, origin.line or 0


def _more(origin: Origin, hidden: int) -> str:
    return f"{origin.source}: ... and {hidden:,} more problems (the first {MAX_PROBLEMS} are shown)"


def at_most(problems: list[str], locations: Locations, left_out: int = 0) -> list[str]:
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


def _message(error: dict, root: type[BaseModel]) -> str:
    kind = error["type"]
    loc = error["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        close = difflib.get_close_matches(key, _valid_keys(loc[:-1], root), n=1)
        return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind == "missing":
        return "missing required key"
    if kind == "union_tag_not_found":
        field = error["ctx"]["discriminator"].strip("'")
        return f"missing required key (one of {', '.join(sorted(_tags(_annotation_at(loc, root), field)))})"
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


def _valid_keys(loc: tuple, root: type[BaseModel]) -> list[str]:
    """The field names of the model at `loc` (raw pydantic loc, tags included), for suggestions."""
    model = _annotation_at(loc, root)
    return list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def _annotation_at(loc: tuple, root: type[BaseModel]) -> object:
    """The schema type at a raw pydantic `loc`, walking models, lists, dicts and union tags."""
    annotation: object = root
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
