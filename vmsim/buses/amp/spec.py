"""The `buses:` entry of an AMP bus (pydantic only)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from vmsim.schema import Name, SideMemory, SizeBytes, Strict, TimeNs


class AmpBusSpec(Strict):
    """Shared-memory queues plus doorbells between heterogeneous cores."""

    plugin: ClassVar[str] = "vmsim.buses.amp.bus:AmpBus"

    kind: Literal["amp"]
    name: Name
    driver: Name
    layout: Literal["v1", "draft-6b", "fixed40", "linux-2026", "vmsim-share"] = "v1"
    queue_format: Literal["amp-2026", "spsc-2025", "spsc-2024"] = "amp-2026"
    queue_elements: int = Field(default=63, ge=2, le=4096)
    element_size: SizeBytes = Field(default=64, ge=40, le=65536)
    max_msg_size: SizeBytes | None = None
    memory: Name | SideMemory
    doorbell: Name
    doorbell_to_driver: Name | None = None
    notify: Literal["in-band", "out-of-band"] = "in-band"
    event_idx: bool = True
    masked_notifications: bool = False
    polling: TimeNs | None = None
    rx_budget: int = Field(default=0, ge=0)
    tx_retry: TimeNs = 10_000_000
    tx_retries: int = Field(default=1000, ge=0)
    handshake_retry: TimeNs = 1_000_000
