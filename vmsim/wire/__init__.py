"""Byte-exact virtio-msg codecs: messages here, shared-memory views in the submodules.

Standard library only (plus `vmsim.errors`): the simulator, the CLI and the tests all build
real frames with this package.

    layout = get_layout("v1")
    data = layout.encode("EVENT_AVAIL", "event", {"vq_index": 0, "next_offset": 0}, dev_num=1)
    frame = layout.decode(data)          # Frame: name, kind, header values, fields

Hot path: ``spec = layout.spec("EVENT_AVAIL", "event")`` once, then ``spec.pack(dev_num,
token, *values)`` or ``spec.encode(fields, dev_num, token)``; ``frame[name]`` reads one field.

FF-A helpers live in `vmsim.wire.ffa`; the shared-memory views (`amp`, `spsc`, `fifo`,
`rings`, `vsock`) are submodules imported by name, and so are the protocol constants the
scenario schema and the simulator share: `virtio` (status and feature bits, device ids) and
`memory` (the 4 KiB page).
"""

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire.layouts import DEFAULT_LAYOUT, LayoutError, get_layout, layout_names
from vmsim.wire.messages import KINDS, Frame, JsonError, Layout, MessageSpec

__all__ = [
    "DEFAULT_LAYOUT",
    "KINDS",
    "DecodeError",
    "EncodeError",
    "Frame",
    "JsonError",
    "Layout",
    "LayoutError",
    "MessageSpec",
    "get_layout",
    "layout_names",
]
