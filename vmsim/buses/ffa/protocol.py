"""The FF-A virtio-msg protocol as the bus kinds' generations speak it: endpoints, feature bits, method
negotiation and what differs between `ffa-2025` and `ffa-2026` (standard library and `vmsim.wire` only)."""

from __future__ import annotations

import struct

from vmsim.wire.ffa import (
    AREA_SHIFT,
    AREA_SHIFT_RFC2025,
    BUS_VERSION_1_0,
    DIRECT_REQ2_BYTES,
    RFC2025_FEATURES,
    RFC2025_GET_DEVICES,
    RFC2025_MAX_AREAS,
    BusFeature,
    EventMethod,
)

RXTX_BUFFER = 4096  # Linux arm_ffa maps one page each for RX and TX
MSG_SEND2_HEADER = struct.Struct("<6I")  # FF-A v1.2 partition message header (flags, -, offset, ids, size, -)
DRIVER_ENDPOINT, PARTITION_ENDPOINT = 0x0001, 0x8001  # a normal-world VM id and a secure partition id
EVENT_NOTIF_ID, FIFO_DRIVER_NOTIF_ID, FIFO_DEVICE_NOTIF_ID = 0, 1, 2
FFA_VERSION_1_2 = 0x0001_0002
TRANSPORT_REVISION = 1
BUS_RESPONSE = 0x03  # type byte of a bus response
BUSY_IMAGE = bytes(DIRECT_REQ2_BYTES)  # the all-zero RESP2 "busy" sentinel (L-26 xfer_direct.c)
METHODS = ("direct", "indirect", "fifo")
FEATURES = {
    "direct": BusFeature.DIRECT_RX | BusFeature.DIRECT_TX,
    "indirect": BusFeature.INDIRECT_RX | BusFeature.INDIRECT_TX,
    "notif": BusFeature.NOTIF_RX | BusFeature.NOTIF_TX,
    "fifo": BusFeature.FIFO,
}


def partition_features(names) -> int:
    """The VERSION feature bits of a partition that supports the named features."""
    bits = 0
    for name in names:
        bits |= FEATURES[name]
    return bits


def usable(method: str, features: int) -> bool:
    """A method is usable only if all of its feature bits are set (L-26 xfer.h)."""
    return features & FEATURES[method] == FEATURES[method]


def bootstrap_method(features: int) -> str:
    """Bootstrap over direct if the partition takes direct requests, else indirect (L-26)."""
    return "direct" if usable("direct", features) else "indirect"


def negotiate(wanted: str, events: str, features: int) -> tuple[str, EventMethod]:
    """The runtime method and event delivery from the VERSION answer, with the reference fallbacks.

    The wanted method if usable, else stay on the bootstrap method. On direct, NOTIF needs both
    notification bits and falls back to POLL (L-26 xfer_direct.c); indirect and FIFO buses deliver
    events as messages of their method.
    """
    method = wanted if usable(wanted, features) else bootstrap_method(features)
    if method == "indirect":
        return method, EventMethod.INDIRECT
    if method == "fifo":
        return method, EventMethod.FIFO
    notif = events == "notif" and usable("notif", features)
    return method, EventMethod.NOTIF if notif else EventMethod.POLL


class Generation2026:
    """What differs between the generations of the FF-A bus, as the 2026 bus does it (L-26): its VERSION,
    AREA_SHARE field names, bus addresses (`area_id << 48`), EVENT_CONFIGURE and FIFO. The partition keeps
    device events for EVENT_POLL until EVENT_CONFIGURE says otherwise."""

    layout = "ffa-2026"
    area_shift = AREA_SHIFT
    configures_events = True  # EVENT_CONFIGURE (and FIFO_CONFIGURE for the FIFO method)
    device_events = EventMethod.POLL
    get_devices_count = None  # the driver's own window
    page_count = "page_count"
    answers_errors = True  # ERROR answers a request the partition cannot decode or refuses

    @staticmethod
    def reset_answer() -> dict:
        return {"result": 0}  # SUCCESS

    @staticmethod
    def version_request() -> dict:
        return {"bus_version": BUS_VERSION_1_0, "transport_revision": TRANSPORT_REVISION,
                "ffa_version": FFA_VERSION_1_2}

    @staticmethod
    def version_answer(partition, request) -> dict:
        return {"bus_version": BUS_VERSION_1_0, "transport_revision": TRANSPORT_REVISION,
                "ffa_version": FFA_VERSION_1_2, "feature_bits": 0, "bus_features": partition.features,
                "max_areas": partition.max_areas}

    @staticmethod
    def read_version(answer) -> tuple[int, int]:
        """(feature bits, areas) of a VERSION answer."""
        return answer["bus_features"], answer["max_areas"]

    @staticmethod
    def area_share(area: int, handle: int, pages: int, attrs: int) -> dict:
        return {"area_id": area, "mem_handle": handle, "mem_tag": 0, "page_count": pages, "sharing_attrs": attrs}


class Generation2025(Generation2026):
    """The RFC 2025 bus (L-ffa-rfc1): a five-field VERSION whose features are bits 0-3 and whose `area_num`
    both sides bound; no EVENT_CONFIGURE and no FIFO, so device events (and, on an indirect bus, responses)
    reach the driver as indirect messages in its RX buffer; bus addresses `area_id << 56`; GET_DEVICES for
    0xFF device numbers. Its AREA_SHARE `attr` word has no published meaning and is sent as 0."""

    layout = "ffa-2025"
    area_shift = AREA_SHIFT_RFC2025
    configures_events = False
    device_events = EventMethod.INDIRECT
    get_devices_count = RFC2025_GET_DEVICES
    page_count = "count"
    answers_errors = False  # no ERROR message: what cannot be decoded is discarded

    @staticmethod
    def reset_answer() -> dict:
        return {}

    @staticmethod
    def version_request() -> dict:
        return {"driver_version": 1, "vmsg_revision": 1, "vmsg_features": 0, "features": RFC2025_FEATURES,
                "area_num": RFC2025_MAX_AREAS}

    @staticmethod
    def version_answer(partition, request) -> dict:
        return {"device_version": 1, "vmsg_revision": 1, "vmsg_features": 0,
                "features": partition.features & RFC2025_FEATURES,
                "area_num": min(partition.max_areas, request["area_num"])}

    @staticmethod
    def read_version(answer) -> tuple[int, int]:
        return answer["features"], min(answer["area_num"], RFC2025_MAX_AREAS)

    @staticmethod
    def area_share(area: int, handle: int, pages: int, attrs: int) -> dict:
        return {"area_id": area, "mem_handle": handle, "tag": 0, "count": pages, "attr": 0}


GENERATIONS = {generation.layout: generation for generation in (Generation2025, Generation2026)}
