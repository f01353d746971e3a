"""The message compiler: field tables -> `MessageSpec` (one `struct.Struct` each) -> `Frame`.

A `Layout` is one generation's header plus its message set. Compiling it builds, once, for
every message: the `struct.Struct` of header + fixed fields, the byte offset of every field
(for error messages), and an encoder and a decoder. Messages whose fields are plain integers
(every v1-family message the simulator sends per request) get closures that do one dict
look-up, one ``pack`` and one ``unpack_from`` per frame; anything unusual (a bad value, a
derived count the caller left out, the fixed-40 frames) falls through to the checked path,
which is also the one that words the error. Both paths give the same bytes.

Errors: decoders raise only `DecodeError` naming the field and its byte offset; encoders raise
only `EncodeError` naming the field.

=============  ================================================================================
module         what it holds
=============  ================================================================================
frame          the headers of each generation, the type byte, le32 arrays, the decoded `Frame`
spec           `MessageSpec`: compiling one message, its checked encoder and decoder
fast           the fast closures for plain-integer messages
layout         `Layout`: a generation's message set, frame-level encode and decode
from_json      the codec JSON form read back (`Layout.encode_json`), `JsonError`
=============  ================================================================================
"""

from vmsim.wire.messages.frame import HEADER_6, HEADER_8, HEADER_FIXED40, KINDS, Frame, Header, type_byte
from vmsim.wire.messages.from_json import JsonError
from vmsim.wire.messages.layout import Layout
from vmsim.wire.messages.spec import MessageSpec

__all__ = [
    "HEADER_6",
    "HEADER_8",
    "HEADER_FIXED40",
    "KINDS",
    "Frame",
    "Header",
    "JsonError",
    "Layout",
    "MessageSpec",
    "type_byte",
]
