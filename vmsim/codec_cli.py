"""``vmsim codec``: decode, encode and list virtio-msg frames from the shell.

``decode`` prints the JSON that ``encode`` reads back, so ``decode | encode -`` gives the
original bytes. ``--layout`` defaults to the JSON's own ``"layout"`` when encoding, else v1; an
empty ``--layout ""`` is an unknown layout, not the default.
User mistakes raise `VmsimError`s; `vmsim.cli.main` prints them one line each and exits 2.

Input is bounded before it is parsed: at most `MAX_INPUT_CHARS` of hex or JSON, JSON nested at
most `MAX_JSON_DEPTH` deep (codec JSON needs three: the message, ``fields``, an array), so no input
reaches the JSON parser's recursion or Python's limit on integer digits; then every key's type is
checked (`vmsim.wire.Layout.encode_json`).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated

import typer

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire import DEFAULT_LAYOUT, Layout, get_layout, layout_names

app = typer.Typer(
    help="Decode, encode and list virtio-msg frames.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

LayoutOption = Annotated[
    str | None,
    typer.Option(
        "--layout",
        "-l",
        metavar="NAME",
        help=f"Message layout: {', '.join(layout_names())} (default {DEFAULT_LAYOUT}).",
    ),
]

MAX_INPUT_CHARS = 1 << 20
"""A frame is at most 65,535 bytes: its hex, or its JSON with a u32 array spelt out, fits well within."""
MAX_JSON_DEPTH = 8

_SEPARATORS = re.compile(r"[\s,:;{}\[\]]+")
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")
_JSON_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def chosen_layout(name: str | None) -> Layout:
    """The layout `--layout` names; only an absent option means the default."""
    return get_layout(DEFAULT_LAYOUT if name is None else name)


def check_size(text: str, what: str) -> None:
    if len(text) > MAX_INPUT_CHARS:
        raise DecodeError(f"{what}: {len(text):,} characters, more than the {MAX_INPUT_CHARS:,} a frame needs")


def check_json_depth(text: str) -> None:
    """EncodeError at the first bracket nested deeper than `MAX_JSON_DEPTH` (strings skipped)."""
    depth = 0
    for match in _JSON_STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                offset = match.start()
                line = text.count("\n", 0, offset) + 1
                column = offset - text.rfind("\n", 0, offset)
                raise EncodeError(
                    f"JSON: nested deeper than {MAX_JSON_DEPTH} levels at line {line} column {column}"
                )
        elif token in ("]", "}"):
            depth -= 1


def read_json(message: str) -> object:
    """The JSON object of the argument, or of stdin for ``-``, bounded in size and depth."""
    if message == "-":
        try:
            text = sys.stdin.read(MAX_INPUT_CHARS + 1)
        except UnicodeDecodeError as exc:
            raise EncodeError(f"JSON: stdin is not UTF-8 text (byte {exc.start} of what was read)") from None
        check_size(text, "JSON on stdin")
    else:
        text = message
        check_size(text, "JSON")
    check_json_depth(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EncodeError(f"JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError:  # the one other failure: an integer longer than Python converts
        raise EncodeError(
            f"JSON: a number with more than {sys.get_int_max_str_digits()} digits (no field holds one)"
        ) from None


def parse_hex(text: str) -> bytes:
    """Bytes from hex as pasted from a debugger.

    Accepts ``0041...``, ``00 41 01``, ``00:41:01``, ``0x00 0x41`` and gdb's ``{0x0, 0x41}``:
    when every group is one or two digits each group is one byte; otherwise the groups are
    joined and must give an even number of digits.
    """
    groups = [group for group in _SEPARATORS.split(text) if group]
    groups = [group[2:] if group[:2] in ("0x", "0X", "\\x") else group for group in groups]
    for group in groups:
        if not _HEX_DIGITS.fullmatch(group):
            raise DecodeError(f"HEX: {group!r} is not hexadecimal")
    if len(groups) > 1 and all(len(group) <= 2 for group in groups):
        digits = "".join(group.zfill(2) for group in groups)
    else:
        digits = "".join(groups)
    if not digits:
        raise DecodeError("HEX: no hex digits given")
    if len(digits) % 2:
        raise DecodeError(f"HEX: odd number of hex digits ({len(digits)})")
    return bytes.fromhex(digits)


@app.command()
def decode(
    frame: Annotated[str, typer.Argument(metavar="HEX", help="The frame, as hex.")],
    layout: LayoutOption = None,
) -> None:
    """Print a frame as JSON: layout, name, kind, header, fields (byte arrays as hex)."""
    check_size(frame, "HEX")
    decoded = chosen_layout(layout).decode(parse_hex(frame))
    typer.echo(json.dumps(decoded.to_json(), indent=2))


@app.command()
def encode(
    message: Annotated[
        str, typer.Argument(metavar="JSON", help="The frame as decode prints it, or - for stdin.")
    ],
    layout: LayoutOption = None,
) -> None:
    """Print the hex frame of a JSON message (msg_size and omitted array counts are computed)."""
    obj = read_json(message)
    if layout is None and isinstance(obj, dict) and isinstance(obj.get("layout"), str):
        layout = obj["layout"]
    typer.echo(chosen_layout(layout).encode_json(obj).hex())


@app.command("list")
def list_messages(layout: LayoutOption = None) -> None:
    """List the layout's messages: name, kind, transport or bus, msg_id and size in bytes."""
    chosen = chosen_layout(layout)
    typer.echo(f"# {chosen.name}: {chosen.description}; header {chosen.header_size} bytes")
    typer.echo(f"{'name':22} {'kind':9} {'class':9} {'msg_id':6} size")
    for spec in chosen.messages:
        size = str(spec.size) if spec.size is not None else f">={spec.min_size}"
        space = "bus" if spec.bus else "transport"
        typer.echo(f"{spec.name:22} {spec.kind:9} {space:9} 0x{spec.msg_id:02x}   {size}")
