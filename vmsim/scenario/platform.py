"""Platform profiles: cost data with a citation on every number.

In a profile file each number is written `{value: "1.43 us", source: "..."}` or
`{value: ..., estimate: "how it was built"}`. The loader strips these wrappers to plain values and
keeps the citation in `Platform.provenance` under the value's dotted key, so a result can always be
traced back to a published figure. A bare number in a profile is an error. Scenario files and
`--set` may override values with bare numbers; those are recorded as `override: <where>`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from vmsim.errors import ScenarioError
from vmsim.profiles import profile_names, profile_path
from vmsim.scenario.locations import KeyPath, Locations, read_yaml
from vmsim.scenario.models import KINDS, Platform

CITATIONS = ("source", "estimate")
_LOOKS_NUMERIC = re.compile(r"^\s*[-+]?\.?\d")
_NOT_COSTS = ("name", "description")  # top-level text, never a number to cite


def resolve_platform(spec: object, base_dir: Path, locations: Locations, label: str) -> dict:
    """Turn the scenario's `platform:` value into a plain platform mapping with `provenance` filled.

    `spec` is a profile name, a profile path (relative to `base_dir`), a mapping
    `{profile: NAME_OR_PATH, ...overrides}`, or a complete inline mapping. The profile's lines are
    grafted into `locations` under `platform`, so later errors point into the profile file.
    Raises `ScenarioError` with every problem found.
    """
    problems: list[str] = []
    if isinstance(spec, str):
        spec = {"profile": spec}
    if not isinstance(spec, dict):
        raise ScenarioError(locations.problem(("platform",), "expected a profile name or path, or a mapping"))
    overrides = dict(spec)
    reference = overrides.pop("profile", None)
    provenance: dict[str, str] = {}
    base: dict = {}
    if reference is not None:
        base = _read_profile(reference, base_dir, locations, provenance, problems)
    given = overrides.pop("provenance", None)
    if given is not None and not (
        isinstance(given, dict) and all(isinstance(v, str) for v in given.values())
    ):
        problems.append(locations.problem(("platform", "provenance"), "expected a mapping of key: citation"))
        given = None
    plain = strip_citations(
        overrides, (), ("platform",), locations, provenance, f"override: {label}", problems
    )
    provenance.update(given or {})
    if problems:
        raise ScenarioError(*problems)
    merged = deep_merge(base, plain)
    merged["provenance"] = provenance
    return merged


def strip_citations(
    tree: object,
    path: KeyPath,
    loc_prefix: KeyPath,
    locations: Locations,
    provenance: dict[str, str],
    override: str | None,
    problems: list[str],
) -> object:
    """Replace `{value, source|estimate}` wrappers by their value and record where each came from.

    `path` is relative to the platform (it names the provenance key); `loc_prefix + path` is the
    key in `locations`. With `override` None (a profile file) bare numbers are refused; otherwise
    each bare number is recorded as coming from `override`.
    """
    where = loc_prefix + path
    if isinstance(tree, dict) and "value" in tree:
        return _unwrap(tree, path, where, locations, provenance, problems)
    if isinstance(tree, dict):
        return {
            key: value
            if path == () and key in _NOT_COSTS
            else strip_citations(value, path + (key,), loc_prefix, locations, provenance, override, problems)
            for key, value in tree.items()
        }
    if not _is_number(tree):
        return tree
    if override is not None:
        provenance[".".join(map(str, path))] = override
    else:
        problems.append(
            locations.problem(
                where,
                f"bare number {tree!r}: every profile number needs a citation, "
                "write {value: ..., source: ...} or {value: ..., estimate: ...}",
            )
        )
    return tree


def deep_merge(base: dict, top: dict) -> dict:
    """`top` onto `base`: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def fill_default_provenance(platform: Platform) -> None:
    """Mark every cost the profile left at its schema default, so every number has an origin."""
    provenance = platform.provenance
    for section in ("memory", "doorbells", "cpus", "software"):
        for name, entry in getattr(platform, section).items():
            for field in type(entry).model_fields:
                # an optional number left out (None) is no number: it means "as another key" or "none"
                if field != "kind" and getattr(entry, field) is not None:
                    provenance.setdefault(f"{section}.{name}.{field}", "default: schema default, no source")
    for kind in KINDS.values():  # each bus kind's own cost section, when the platform has it
        costs = getattr(platform, kind.name, None) if kind.costs is not None else None
        if costs is not None:
            _fill_numbers(provenance, kind.name, costs)


def _fill_numbers(provenance: dict[str, str], prefix: str, model) -> None:
    """Mark each number left at its default in a section, nested ones included (FF-A's partitions, hypervisors,
    memory calls)."""
    for field in type(model).model_fields:
        value, key = getattr(model, field), f"{prefix}.{field}"
        entries = value.items() if isinstance(value, dict) else [(None, value)]
        for name, entry in entries:
            where = key if name is None else f"{key}.{name}"
            if hasattr(type(entry), "model_fields"):
                _fill_numbers(provenance, where, entry)
            elif isinstance(entry, int | float) and not isinstance(entry, bool):
                provenance.setdefault(where, "default: schema default, no source")


def _read_profile(
    reference: object, base_dir: Path, locations: Locations, provenance: dict[str, str], problems: list[str]
) -> dict:
    key = ("platform", "profile")
    if not isinstance(reference, str) or not reference:
        problems.append(locations.problem(key, "expected a profile name or a path to a profile file"))
        return {}
    path = profile_path(reference) or (base_dir / reference).expanduser()
    if not path.is_file():
        shipped = profile_names()
        close = difflib.get_close_matches(reference, shipped, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(
            locations.problem(
                key,
                f"unknown platform profile {reference!r}{hint}: not a shipped "
                f"profile ({', '.join(shipped)}) nor a file",
            )
        )
        return {}
    try:
        data, profile_locations = read_yaml(path, str(path))
    except ScenarioError as exc:
        problems.extend(exc.problems)
        return {}
    if not isinstance(data, dict):
        problems.append(profile_locations.problem((), "a profile must be a mapping of platform keys"))
        return {}
    if "provenance" in data:
        problems.append(
            profile_locations.problem(
                ("provenance",),
                "provenance is built by the loader: cite each value where it is given instead",
            )
        )
        data.pop("provenance")
    data.setdefault("name", path.stem)
    plain = strip_citations(data, (), (), profile_locations, provenance, None, problems)
    locations.graft(("platform",), profile_locations)
    return plain


def _unwrap(
    tree: dict,
    path: KeyPath,
    where: KeyPath,
    locations: Locations,
    provenance: dict[str, str],
    problems: list[str],
) -> object:
    value = tree["value"]
    locations[where] = locations.origin(where + ("value",))
    citations = [key for key in CITATIONS if key in tree]
    extra = sorted(set(tree) - {"value", *CITATIONS})
    if extra:
        problems.append(
            locations.problem(
                where, f"unexpected key {extra[0]!r} beside value (use one of {', '.join(CITATIONS)})"
            )
        )
    elif len(citations) != 1:
        problems.append(locations.problem(where, "give exactly one of source or estimate beside value"))
    elif not isinstance(tree[citations[0]], str) or not tree[citations[0]].strip():
        problems.append(locations.problem(where + (citations[0],), "the citation must be non-empty text"))
    else:
        provenance[".".join(map(str, path))] = f"{citations[0]}: {' '.join(tree[citations[0]].split())}"
    if isinstance(value, (dict, list)):
        problems.append(locations.problem(where, "value must be a single number or unit string"))
    return value


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or (isinstance(value, str) and bool(_LOOKS_NUMERIC.match(value)))
