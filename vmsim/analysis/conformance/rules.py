"""The conformance rules: an id, the spec section it comes from, and what it asks, once.

Sections name the virtio-msg transport text of PR28 (December 2025) by its section path below
"Virtio Over Messages" (the LaTeX label, so it can be found in any rendering), and the virtio 1.x core
sections the transport builds on. The table is the single source of docs/conformance.md's rules table
(a test keeps the two equal).
"""

from __future__ import annotations

from typing import NamedTuple


class Rule(NamedTuple):
    id: str
    section: str
    asks: str


PR28 = "virtio-msg PR28"

RULES = (
    Rule("frame-layout", f"{PR28} Basic Concepts / Common Message Format",
         "a sent frame is a message of its bus's layout: type bits 2-7 clear, msg_size equal to the bytes "
         "sent and to the size the message's layout gives (fixed fields plus counted arrays)"),
    Rule("bus-message-dev-num", f"{PR28} Basic Concepts / Common Message Format / Bus",
         "bus messages carry dev_num 0; excepted are the messages whose layout puts a device there: FF-A 2026's "
         "ERROR response (the failing device, L-26) and vmsim-share's SHM_* (the device the region is for)"),
    Rule("sender", f"{PR28} Transport Messages / Overview; Bus Messages / Overview (IDs and issuers)",
         "requests and events come from the side the spec names: transport requests, EVENT_AVAIL and "
         "GET_DEVICES from the driver; EVENT_USED, EVENT_CONFIG and EVENT_DEVICE from the device side; PING "
         "from either; implementation-defined bus requests from the driver, their events from the device"),
    Rule("response-pairing", f"{PR28} Basic Concepts / Message Ordering / Bus",
         "every response answers a request delivered to the same device number and not yet answered, in "
         "the order the requests were delivered: one response per request"),
    Rule("tokens", f"{PR28} Basic Concepts / Common Message Format (token)",
         "a response carries its request's token (the bus's correlation, echoed) and an event carries "
         "token 0 (no request to correlate)"),
    Rule("reset-before-acknowledge", "virtio 1.x §3.1.1; " f"{PR28} Device Initialization / Status Information",
         "the first status a driver writes to a device (and the first after the device was added again) "
         "is 0, a reset: ACKNOWLEDGE only after a reset"),
    Rule("status-order", "virtio 1.x §2.1.1, §3.1.1; " f"{PR28} Device Initialization / Overview / Driver",
         "status bits are added one step per write, ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, each after "
         "the one before it; no bit is cleared but by a reset; DRIVER_OK only once the device reported "
         "FEATURES_OK kept; after FAILED only a reset"),
    Rule("device-info-first", f"{PR28} Device Initialization / Device Information / Driver",
         "GET_DEVICE_INFO before any feature or virtqueue message to the device"),
    Rule("features-before-features-ok", "virtio 1.x §3.1.1; " f"{PR28} Device Initialization / Feature "
         "Negotiation / Driver", "SET_DRIVER_FEATURES only after DRIVER and before FEATURES_OK is written "
         "(since the last reset)"),
    Rule("features-subset", "virtio 1.x §2.2.1; " f"{PR28} Transport Messages / SET_DRIVER_FEATURES",
         "the driver sets only feature bits the device offered in its GET_DEVICE_FEATURES answers"),
    Rule("queues-after-features-ok", f"{PR28} Device Initialization / Overview / Driver",
         "SET_VQUEUE only once the device reported FEATURES_OK (feature negotiation confirmed)"),
    Rule("ring-reset-negotiated", f"{PR28} Device Initialization / Virtqueue Configuration",
         "RESET_VQUEUE only when the driver accepted VIRTIO_F_RING_RESET (feature bit 40)"),
    Rule("inactive-device", f"{PR28} Transport Messages / VIRTIO_MSG_GET_DEVICE_INFO",
         "while a device's status is 0 (inactive: at power-on, after a reset) it is sent only GET_DEVICE_INFO, "
         "GET_DEVICE_STATUS and SET_DEVICE_STATUS, and it sends no EVENT_CONFIG (EVENT_USED: "
         "`events-after-driver-ok`)"),
    Rule("events-after-driver-ok", "virtio 1.x §2.1.2; " f"{PR28} Device Initialization / Finalizing "
         "Initialization", "EVENT_AVAIL only once the device has reported DRIVER_OK to the driver, EVENT_USED "
         "only while the device has DRIVER_OK"),
    Rule("no-traffic-after-removal", f"{PR28} Bus Messages / BUS_MSG_EVENT_DEVICE; Transport Messages / "
         "Overview", "no transport message to a device after the driver received EVENT_DEVICE(REMOVED) for it, "
         "none from it after the bus sent that event, until EVENT_DEVICE(READY)"),
    Rule("ping-echo", f"{PR28} Bus Messages / BUS_MSG_PING / Bus",
         "a PING response echoes the data of its request"),
)

RULE_IDS = tuple(rule.id for rule in RULES)
SECTIONS = {rule.id: rule.section for rule in RULES}


def rules_markdown() -> str:
    """The rules as docs/conformance.md's table."""
    lines = ["| rule | section | what it asks |", "|---|---|---|"]
    lines += [f"| `{rule.id}` | {rule.section} | {rule.asks} |" for rule in RULES]
    return "\n".join(lines)
