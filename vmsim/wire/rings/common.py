"""What both ring formats share: the descriptor's size and flags, the queue-size limit, the
event-index test and the check that an area fits its buffer."""

from __future__ import annotations

from vmsim.errors import DecodeError
from vmsim.wire._view import check_span

DESC_SIZE = 16
DESC_F_NEXT = 1
DESC_F_WRITE = 2
DESC_F_INDIRECT = 4
"""Descriptor flags, shared by both ring formats (virtio 1.2 §2.7.5, §2.8.3)."""
MAX_QUEUE_SIZE = 32768


def need_event(event_idx: int, new_idx: int, old_idx: int) -> bool:
    """`vring_need_event`: did moving from old to new pass `event_idx`? 16-bit arithmetic (virtio 1.2 §2.7.10)."""
    return ((new_idx - event_idx - 1) & 0xFFFF) < ((new_idx - old_idx) & 0xFFFF)


def check_area(buf, what: str, offset: int, align: int, size: int) -> None:
    """A ring area must be aligned as the spec says and lie inside the buffer: else DecodeError naming it."""
    if offset % align:
        raise DecodeError(f"{what} at offset {offset} is not {align}-byte aligned")
    check_span(buf, offset, size, what)

