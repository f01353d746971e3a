"""`--set dotted.key=value` overrides, applied to the raw scenario before validation.

Keys walk mappings by key and lists by index (`buses[0]`, `buses.0`) or by an item's `name`
(`buses.amp0.queue_elements`). The value is read as YAML, so `16`, `true`, `[1, 2]` and `10 kHz`
all mean what they look like. The last key may be new (a field left at its default); the schema
then checks it like any other key, naming the `--set` argument.

`len(list)=N` keeps the first N items of a list (`len(devices)=4`), as a sweep's `len(list): N` does:
a count axis without repeating the items.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import yaml

from vmsim.errors import ScenarioError
from vmsim.scenario.locations import KeyPath, SafeLoader, format_path, shape_problem

MAX_SHOWN = 100  # characters of a --set argument quoted in a message
_KEY = re.compile(r"[^.\[\]]+(?:\[\d+\])*(?:\.[^.\[\]]+(?:\[\d+\])*)*")
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
LENGTH_KEY = re.compile(r"len\((.+)\)")  # `len(devices)`: how many of a list's items to keep


def override_arguments(set: Mapping[str, object] | Iterable[str] | None = None, *,
                       seed: int | None = None, **overrides) -> list[str]:
    """All override forms as `--set` arguments, in precedence order: `set`, keywords, `seed`.

    `set` is {"dotted.key": value} or ["dotted.key=value", ...]; keywords spell each dot `__`
    (`buses__amp0__queue_elements=16`). Dict values are written as YAML so the loader reads back
    exactly the value given (the string "true" stays a string, a list stays a list).
    """
    if isinstance(set, str):
        set = [set]
    arguments = [f"{key}={_as_yaml(value)}" for key, value in set.items()] if isinstance(set, Mapping) \
        else list(set or ())
    arguments += [f"{key.replace('__', '.')}={_as_yaml(value)}" for key, value in overrides.items()]
    if seed is not None:
        arguments.append(f"seed={int(seed)}")
    return arguments


def _as_yaml(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=2**31).strip().removesuffix("...").strip()


@dataclass(frozen=True, slots=True)
class Override:
    argument: str  # as given, for messages: "buses.amp0.queue_elements=16"
    keys: tuple[str | int, ...]
    value: object
    keeps_first: bool = False  # `len(list)=N`: the value is how many of the list's items to keep

    @property
    def label(self) -> str:
        return _label(self.argument)

    def value_over(self, container: dict | list, slot: str | int) -> object:
        """What is written at `container[slot]`: the value given, or for `len(list)=N` the list's first N items."""
        if not self.keeps_first:
            return self.value
        name = ".".join(map(str, self.keys))
        if isinstance(container, dict) and slot not in container:
            raise ScenarioError(f"{self.label}: there is no list {name} to keep items of")
        if not isinstance(container[slot], list):
            raise ScenarioError(f"{self.label}: {name} is not a list, so it has no items to keep")
        items = container[slot]
        problem = count_problem(self.value, items, name)
        if problem:
            raise ScenarioError(f"{self.label}: {problem}")
        return items[:self.value]


def count_problem(count: object, items: list, name: str) -> str | None:
    """Why `count` cannot say how many of `items` (the list `name`) to keep, or None when it can."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(items):
        return f"{count!r} is not a count from 1 to {len(items)} ({name} has {len(items)} items)"
    return None


def parse_override(argument: str) -> Override:
    """'buses[0].doorbell=ipcc' -> Override(keys=('buses', 0, 'doorbell'), value='ipcc')."""
    key, equals, text = argument.partition("=")
    key = key.strip()
    if not equals or not key:
        raise ScenarioError(f"{_label(argument)}: expected KEY=VALUE, e.g. buses.amp0.queue_elements=16")
    length = LENGTH_KEY.fullmatch(key)
    if length:
        key = length.group(1).strip()
    if not _KEY.fullmatch(key):
        raise ScenarioError(f"{_label(argument)}: cannot read key {key!r} (use dotted.names and [index])")
    keys = tuple(
        int(index) if index else int(name) if name.isdigit() else name
        for name, index in _SEGMENT.findall(key)
    )
    found = shape_problem(text)
    if found:
        raise ScenarioError(f"{_label(argument)}: the value: {found[1]}")
    try:
        value = yaml.load(text, Loader=SafeLoader)
    except yaml.YAMLError as exc:
        raise ScenarioError(
            f"{_label(argument)}: cannot read the value as YAML: {' '.join(str(exc).split())}"
        ) from None
    return Override(argument, keys, value, keeps_first=length is not None)


def _label(argument: str) -> str:
    """How an argument is named in messages: whole when short, cut when it would drown the message."""
    return f"--set {argument}" if len(argument) <= MAX_SHOWN else f"--set {argument[:MAX_SHOWN - 3]}..."


def locate(data: dict, override: Override) -> tuple[dict | list, str | int, KeyPath]:
    """Find where `override` writes: (container, key or index, concrete key path).

    List items named by `name` become indices in the returned path, so error locations match
    the schema's. Raises `ScenarioError` naming the argument when the path does not exist.
    """
    container: object = data
    path: KeyPath = ()
    for key in override.keys[:-1]:
        slot = _slot(container, key, path, override)
        if isinstance(container, dict) and slot not in container:
            raise ScenarioError(
                f"{override.label}: no key {key!r} under {format_path(path) or 'the top level'}"
                f"{_hint(key, container)}"
            )
        container, path = container[slot], path + (slot,)
    slot = _slot(container, override.keys[-1], path, override)
    return container, slot, path + (slot,)


def _slot(container: object, key: str | int, path: KeyPath, override: Override) -> str | int:
    """The dict key or list index that `key` names in `container`."""
    where = format_path(path) or "the top level"
    if isinstance(container, list):
        return _list_index(container, key, where, override)
    if not isinstance(container, dict):
        raise ScenarioError(f"{override.label}: {where} is a single value, it has no key {key!r}")
    if isinstance(key, int):
        raise ScenarioError(f"{override.label}: {where} is a mapping, not a list; use a key name")
    return key


def _list_index(items: list, key: str | int, where: str, override: Override) -> int:
    if isinstance(key, int):
        if key >= len(items):
            raise ScenarioError(f"{override.label}: {where} has {len(items)} items, no index {key}")
        return key
    names = [item.get("name") for item in items if isinstance(item, dict)]
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == key:
            return index
    raise ScenarioError(f"{override.label}: no item named {key!r} in {where}{_hint(key, names)}")


def _hint(key: str, choices) -> str:
    close = difflib.get_close_matches(str(key), [str(c) for c in choices if c is not None], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
