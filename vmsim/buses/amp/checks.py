"""What an AMP bus's shared-memory queue format can carry: spsc slots are 64 bytes, and out-of-band
notification uses the amp-2026 notification words (at most 64 words of 64 bits, a power-of-two block of at
most 16 bits per device)."""

from __future__ import annotations

from collections.abc import Iterable

from vmsim.buses.problems import Problem, share_layout
from vmsim.wire.spsc import SLOT_SIZE

MAX_NOTIFY_BITS_PER_DEVICE = 16  # amp-2026 num_vq_notif_per_device: a power of two, 1..16
MAX_NOTIFY_BITS = 64 * 64  # at most 64 notification words of 64 bits


def problems(scenario, largest_request) -> Iterable[Problem]:
    """What each shared-memory queue format can carry: spsc slots are 64 bytes, and out-of-band
    notification uses the amp-2026 notification words (at most 64 words of 64 bits, a power-of-two
    block of at most 16 bits per device)."""
    devices_on: dict[str, list[tuple[int, int]]] = {}
    for index, device in enumerate(scenario.devices):
        devices_on.setdefault(device.bus, []).append((device.queues, index))
    for index, bus in enumerate(scenario.buses):
        if bus.kind != "amp":
            continue
        if bus.queue_format != "amp-2026" and bus.element_size != SLOT_SIZE:
            yield (
                ("buses", index, "element_size"),
                f"{bus.queue_format} queues have fixed {SLOT_SIZE}-byte slots, not {bus.element_size}",
            )
        yield from _no_effect(bus, index)
        if bus.notify != "out-of-band":
            continue
        if bus.queue_format != "amp-2026":
            yield (
                ("buses", index, "notify"),
                f"out-of-band notification needs the amp-2026 notification words, not {bus.queue_format}",
            )
            continue
        devices = devices_on.get(bus.name, [])
        queues, widest = max(devices, key=lambda item: item[0], default=(1, None))
        if queues > MAX_NOTIFY_BITS_PER_DEVICE:
            yield (
                ("devices", widest, "queues"),
                (
                    f"{queues} virtqueues on out-of-band bus {bus.name!r}: at most "
                    f"{MAX_NOTIFY_BITS_PER_DEVICE} per device"
                ),
            )
            continue
        bits = 1 << (queues - 1).bit_length()
        if len(devices) * bits > MAX_NOTIFY_BITS:
            yield (
                ("buses", index, "notify"),
                (
                    f"{len(devices)} devices x {bits} notification bits exceed the {MAX_NOTIFY_BITS} bits "
                    "of amp-2026's notification words"
                ),
            )


def _no_effect(bus, index: int) -> Iterable[Problem]:
    """Settings that change nothing where they stand: a user who sets one expects an effect and gets none."""
    if bus.masked_notifications and bus.notify == "in-band":
        yield (
            ("buses", index, "masked_notifications"),
            ("masks amp-2026's out-of-band notification words, and in-band notification has none: "
             "it has no effect (set notify: out-of-band, or drop it)"),
        )
    if bus.polling is not None and bus.doorbell_to_driver is not None:
        yield (
            ("buses", index, "doorbell_to_driver"),
            "a polling bus rings no doorbell, so this one is never used (drop it, or polling)",
        )


def share_checks(bus, sharing) -> Iterable[tuple[tuple, str]]:
    """Regions are shared by vmsim-share messages over the carve-out (bounce buffers included)."""
    yield from share_layout(bus)
