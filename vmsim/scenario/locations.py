"""Where each value came from, so every problem names a file, a line and a key.

A scenario is assembled from several sources (the scenario file, a platform profile, `--set`
arguments). `Locations` maps a key path such as `("buses", 0, "queue_elements")` to its origin;
YAML is read with a loader that records the line of every mapping key and sequence item.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from vmsim.errors import ScenarioError

KeyPath = tuple[str | int, ...]
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built in: ~5x faster, same marks


@dataclass(frozen=True, slots=True)
class Origin:
    """A file and line (line None when unknown), or a `--set` argument."""

    source: str
    line: int | None = None

    def __str__(self) -> str:
        return self.source if self.line is None else f"{self.source}:{self.line}"


def format_path(path: KeyPath) -> str:
    """("buses", 0, "queue_elements") -> "buses[0].queue_elements"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def problem(origin: Origin, path: KeyPath, message: str) -> str:
    """One self-contained line: 'file:line: key.path: message'."""
    return f"{origin}: {format_path(path)}: {message}" if path else f"{origin}: {message}"


class Locations:
    """Key path -> Origin; a path without its own entry takes the nearest enclosing one."""

    __slots__ = ("_origins", "default")

    def __init__(self, default: Origin):
        self.default = default
        self._origins: dict[KeyPath, Origin] = {}

    def __setitem__(self, path: KeyPath, origin: Origin) -> None:
        self._origins[path] = origin

    def origin(self, path: KeyPath) -> Origin:
        for end in range(len(path), -1, -1):
            found = self._origins.get(path[:end])
            if found is not None:
                return found
        return self.default

    def graft(self, prefix: KeyPath, other: Locations) -> None:
        """Add `other`'s entries under `prefix` (a profile's lines under `platform`).

        Entries already here win: they are the scenario's own overrides of the profile.
        """
        for path, origin in other._origins.items():
            self._origins.setdefault(prefix + path, origin)

    def reset(self, path: KeyPath, origin: Origin) -> None:
        """`path` and everything below it now come from `origin` (a value replaced by `--set`)."""
        for stale in [p for p in self._origins if p[: len(path)] == path]:
            del self._origins[stale]
        self._origins[path] = origin

    def problem(self, path: KeyPath, message: str) -> str:
        return problem(self.origin(path), path, message)

    def problems(self, found: list[tuple[KeyPath, str]]) -> list[str]:
        """Place each (path, message), in file order: users fix a file from the top down."""
        placed = sorted(
            ((self.origin(path), path, message) for path, message in found),
            key=lambda item: (item[0].source, item[0].line or 0),
        )
        return [problem(origin, path, message) for origin, path, message in placed]


def read_yaml(path: Path, shown: str) -> tuple[object, Locations]:
    """Parse a YAML file with `safe_load` semantics, recording the line of every key and item.

    `shown` is how the file is named in messages. Missing, empty and unparsable files raise
    `ScenarioError`; duplicate keys (which PyYAML would silently collapse) are reported too.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{shown}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{shown}: cannot read: {exc}") from None
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        raise ScenarioError(f"{where}: YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{shown}: YAML syntax error: {' '.join(str(exc).split())}") from None
    finally:
        loader.dispose()
    if data is None:
        raise ScenarioError(f"{shown}: file is empty")
    locations = Locations(Origin(shown, node.start_mark.line + 1))
    duplicates: list[str] = []
    _record(node, (), locations, shown, duplicates)
    if duplicates:
        raise ScenarioError(*duplicates)
    return data, locations


def _record(node: yaml.Node, path: KeyPath, locations: Locations, shown: str, duplicates: list[str]) -> None:
    """Walk the composed node tree alongside the data: iterative, so deep files cannot overflow."""
    stack = [(node, path)]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:  # an alias shares its anchor's node
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value
                if key == "<<":
                    continue
                line = key_node.start_mark.line + 1
                if key in keys:
                    duplicates.append(problem(Origin(shown, line), path + (key,), "key given twice"))
                keys.add(key)
                locations[path + (key,)] = Origin(shown, line)
                stack.append((value_node, path + (key,)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                locations[path + (index,)] = Origin(shown, item.start_mark.line + 1)
                stack.append((item, path + (index,)))
