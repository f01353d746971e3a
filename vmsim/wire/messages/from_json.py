"""The codec JSON form read back: every key type-checked, hex strings turned back into bytes.

`Frame.to_json` writes the form; `Layout.encode_json` reads it through these checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from vmsim.errors import EncodeError
from vmsim.wire.fields import Blob
from vmsim.wire.messages.frame import KINDS

if TYPE_CHECKING:
    from vmsim.wire.messages.spec import MessageSpec


class JsonError(EncodeError):
    """A codec JSON object that is not shaped as `Frame.to_json` prints one.

    The message has one self-contained line per problem (each naming the key's path), also listed
    in `problems`, so the CLI prints them all at once.
    """

    def __init__(self, *problems: str):
        super().__init__(*problems)
        self.problems = list(problems)

    def __str__(self) -> str:
        return "\n".join(self.problems)


JSON_KEYS = ("layout", "name", "kind", "header", "fields")
_MAX_PROBLEMS = 10  # a JSON of 100,000 wrong keys is reported in ten lines, not 100,000


def _json_type(value) -> str:
    """The JSON name of a value's type (what the user wrote), not Python's."""
    names = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    if type(value) in names:
        return names[type(value)]
    if isinstance(value, Mapping):
        return "object"
    return "array" if isinstance(value, list | tuple) else type(value).__name__


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_json(obj, where: str) -> None:
    """Raise a `JsonError` listing every mistyped key of `obj` (the first ten, then a count)."""
    problems = _json_problems(obj, where)
    if problems:
        shown = problems[:_MAX_PROBLEMS]
        if len(problems) > _MAX_PROBLEMS:
            shown.append(f"{where}: ... and {len(problems) - _MAX_PROBLEMS} more problems")
        raise JsonError(*shown)


def _json_problems(obj, where: str) -> list[str]:
    """Every key of a codec JSON object whose type is wrong, by path (``fields.features[3]``).

    Types only; ranges, names and counts are the encoder's checks, which word their own errors.
    """
    if not isinstance(obj, Mapping):
        return [f"{where}: expected a JSON object, got {_json_type(obj)}"]
    problems = [
        f"{where}: unknown key {key!r}; keys are {', '.join(JSON_KEYS)}" for key in obj if key not in JSON_KEYS
    ]
    if "name" not in obj:
        problems.append(f"{where}: missing key 'name'")
    for key in ("layout", "name", "kind"):
        if key in obj and not isinstance(obj[key], str):
            problems.append(f"{where}: {key!r} must be a string, got {_json_type(obj[key])}")
    if "kind" in obj and isinstance(obj["kind"], str) and obj["kind"] not in KINDS:
        problems.append(f"{where}: 'kind' is {obj['kind']!r}, expected one of {', '.join(KINDS)}")
    for key in ("header", "fields"):
        if key in obj and not isinstance(obj[key], Mapping):
            problems.append(f"{where}: {key!r} must be an object, got {_json_type(obj[key])}")
    header = obj.get("header")
    if isinstance(header, Mapping):
        for name, value in header.items():
            if not _is_int(value):
                problems.append(f"{where}: header.{name} must be an integer, got {_json_type(value)}")
    fields = obj.get("fields")
    if isinstance(fields, Mapping):
        for name, value in fields.items():
            if isinstance(value, list | tuple):
                bad = next((i for i, element in enumerate(value) if not _is_int(element)), None)
                if bad is not None:
                    problems.append(
                        f"{where}: fields.{name}[{bad}] must be an integer, got {_json_type(value[bad])}"
                    )
            elif not (_is_int(value) or isinstance(value, str)):
                problems.append(
                    f"{where}: fields.{name} must be an integer, a hex string or an array of integers, "
                    f"got {_json_type(value)}"
                )
    return problems


def fields_from_json(spec: MessageSpec, fields: Mapping) -> dict:
    """Hex strings back to bytes for the byte fields; everything else passes through."""
    byte_fields = {f.name for f in spec.fixed if isinstance(f, Blob)}
    if spec.array is not None and spec.array.is_bytes:
        byte_fields.add(spec.array.name)
    converted = dict(fields)
    for name in byte_fields & set(fields):
        text = fields[name]
        if not isinstance(text, str):
            raise EncodeError(f"encode {spec.where}: field {name!r} must be a hex string")
        try:
            converted[name] = bytes.fromhex(text)
        except ValueError:
            raise EncodeError(f"encode {spec.where}: field {name!r} is not valid hex: {text!r}") from None
    return converted
