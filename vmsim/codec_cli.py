"""``vmsim codec``: decode, encode and list virtio-msg frames from the shell.

``decode`` prints the JSON that ``encode`` reads back, so ``decode | encode -`` gives the
original bytes. ``--layout`` defaults to the JSON's own ``"layout"`` when encoding, else v1.
User mistakes raise `VmsimError`s; `vmsim.cli.main` prints them on one line and exits 2.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated

import typer

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire import DEFAULT_LAYOUT, get_layout, layout_names

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

_SEPARATORS = re.compile(r"[\s,:;{}\[\]]+")
_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")


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
    decoded = get_layout(layout or DEFAULT_LAYOUT).decode(parse_hex(frame))
    typer.echo(json.dumps(decoded.to_json(), indent=2))


@app.command()
def encode(
    message: Annotated[
        str, typer.Argument(metavar="JSON", help="The frame as decode prints it, or - for stdin.")
    ],
    layout: LayoutOption = None,
) -> None:
    """Print the hex frame of a JSON message (msg_size and omitted array counts are computed)."""
    text = sys.stdin.read() if message == "-" else message
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EncodeError(f"JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if layout is None:
        layout = obj.get("layout", DEFAULT_LAYOUT) if isinstance(obj, dict) else DEFAULT_LAYOUT
    typer.echo(get_layout(layout).encode_json(obj).hex())


@app.command("list")
def list_messages(layout: LayoutOption = None) -> None:
    """List the layout's messages: name, kind, transport or bus, msg_id and size in bytes."""
    chosen = get_layout(layout or DEFAULT_LAYOUT)
    typer.echo(f"# {chosen.name}: {chosen.description}; header {chosen.header_size} bytes")
    typer.echo(f"{'name':22} {'kind':9} {'class':9} {'msg_id':6} size")
    for spec in chosen.messages:
        size = str(spec.size) if spec.size is not None else f">={spec.min_size}"
        space = "bus" if spec.bus else "transport"
        typer.echo(f"{spec.name:22} {spec.kind:9} {space:9} 0x{spec.msg_id:02x}   {size}")
