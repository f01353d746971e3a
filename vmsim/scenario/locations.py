"""Where each value came from, so every problem names a file, a line and a key.

A scenario is assembled from several sources (the scenario file, a platform profile, `--set`
arguments). `Locations` maps a key path such as `("buses", 0, "queue_elements")` to its origin;
YAML is read with a loader that records the line of every mapping key and sequence item.

Every input file is bounded before it is parsed: a regular file (not a FIFO, a device or a
directory), at most `MAX_YAML_BYTES` (4 MiB) of YAML, nested at most `MAX_YAML_DEPTH` deep and at
most `MAX_YAML_NODES` values once aliases are expanded, without cycles, so neither `/dev/zero` nor
an alias bomb can exhaust memory, and neither a deep nest nor a self-containing alias can overflow a
stack.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml

from vmsim.errors import ScenarioError

KeyPath = tuple[str | int, ...]
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built in: ~5x faster, same marks

MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 1_000_000
_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


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
        text = read_bounded(path, shown, MAX_YAML_BYTES).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{shown}: cannot read: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    found = shape_problem(text)
    if found:
        raise ScenarioError(f"{shown}:{found[0]}: {found[1]}")
    loader = SafeLoader(text)
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


def read_bounded(path: Path, shown: str, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; anything else is a `ScenarioError`.

    Opened without blocking and checked on the open descriptor, so a FIFO cannot hang the read and a
    file swapped after a check is still caught; a file that grows while read stops at the limit."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ScenarioError(f"{shown}: file not found") from None
    except OSError as exc:
        raise ScenarioError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            raise ScenarioError(f"{shown}: cannot read: {kind}, not a regular file")
        chunks, remaining = [], limit + 1
        while remaining and (chunk := os.read(descriptor, min(remaining, 1 << 20))):
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        raise ScenarioError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(descriptor)
    data = b"".join(chunks)
    if len(data) > limit:
        raise ScenarioError(f"{shown}: file is larger than the limit of {limit // (1024 * 1024)} MiB")
    return data


def shape_problem(text: str) -> tuple[int, str] | None:
    """(line, message) when a YAML text is too deep, too large once aliases are expanded, or recursive.

    Walks the parser's events (no objects built). Each anchor's expanded size is remembered, so
    `[*a, *a, *a]` nested ten deep counts what it would become, not the few bytes it is written in;
    an alias to a node still open is a cycle, which no scenario needs and every tree walk chokes on.
    Syntax errors are left to the parse proper, which reports them with their line."""
    loader = SafeLoader(text)
    open_nodes: list[list] = []  # [anchor, values so far] per open mapping or sequence
    anchored: dict[str, int] = {}
    expanded = 0
    try:
        while (event := loader.get_event()) is not None:
            line = event.start_mark.line + 1
            if isinstance(event, yaml.CollectionStartEvent):
                if len(open_nodes) >= MAX_YAML_DEPTH:
                    return line, f"nested more than {MAX_YAML_DEPTH} levels deep"
                open_nodes.append([event.anchor, 1])
                expanded += 1
                continue
            if isinstance(event, yaml.CollectionEndEvent):
                anchor, size = open_nodes.pop()
            elif isinstance(event, yaml.ScalarEvent):
                anchor, size = event.anchor, 1
                expanded += 1
            elif isinstance(event, yaml.AliasEvent):
                if any(node[0] == event.anchor for node in open_nodes):
                    return line, f"alias *{event.anchor} is inside its own anchor: a structure cannot contain itself"
                anchor, size = None, anchored.get(event.anchor, 1)
                expanded += size
            else:
                continue
            if anchor is not None:
                anchored[anchor] = size
            if open_nodes:
                open_nodes[-1][1] += size
            if expanded > MAX_YAML_NODES:
                return line, f"more than {MAX_YAML_NODES:,} values once aliases are expanded"
    except yaml.MarkedYAMLError as exc:
        # PyYAML >= 6.0.4 limits nesting itself, in its scanner, which reads ahead of these events: the same
        # problem, said the same way whichever limit is met first
        if "nesting depth" in str(exc.problem) and exc.problem_mark is not None:
            return exc.problem_mark.line + 1, f"nested more than {MAX_YAML_DEPTH} levels deep"
        return None  # other syntax errors: the parse proper reports them with their line
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    return None


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
