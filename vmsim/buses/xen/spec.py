"""The `buses:` entry of a Xen bus, its `domains:` and its platform costs (`platform.xen`); pydantic only."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from vmsim.schema import Name, SideMemory, SizeBytes, Strict, TimeNs
from vmsim.wire.spsc import SLOT_SIZE

XEN = "xen"
"""As a bus's `frontend`: the hypervisor itself is the driver side (the vmp proxy)."""


class XenCosts(Strict):
    """What the Xen hypervisor operations of a Xen bus cost (event-channel send and upcall are doorbells).

    Grant operations include their hypercall (a batch of several pays it once); `tlb_*` is the flush that
    follows each grant unmap; `grant_lock` is the part of each map or unmap op spent holding the backend
    domain's grant-table lock, which every bus to that backend shares. With `tlb_ipis` the flush is an IPI
    to each other running backend vCPU under the hypervisor's one global flush lock, held from the send
    until the last acknowledgement (Xen on x86); without, a broadcast invalidation nothing serialises
    (Arm). `copy_streams` copies (grant copy, copies into persistent grants) run at once at full speed on
    the host's memory; more share it (0: no limit).
    """

    hypercall: TimeNs = 0
    evtchn_unmask: TimeNs = 0
    vm_switch: TimeNs = 0
    sched_wakeup: TimeNs = 0
    grant_entry: TimeNs = 0
    grant_map: TimeNs = 0
    grant_unmap: TimeNs = 0
    tlb_shootdown: TimeNs = 0
    tlb_ipi: TimeNs = 0
    tlb_flush: TimeNs = 0
    tlb_ack: TimeNs = 0
    tlb_ipis: bool = False
    grant_lock: TimeNs = 0
    copy_streams: int = Field(default=0, ge=0, le=1024)
    grant_copy: TimeNs = 0
    memcpy_per_kib: TimeNs = 0
    gfn2mfn: TimeNs = 0


class DomainSpec(Strict):
    """A Xen domain at one end of Xen buses; its vCPUs serve every bus it is on."""

    name: Name
    kind: Literal["dom0", "domd", "domu"] = "domu"
    vcpus: int = Field(default=1, ge=1, le=512)
    pcpu: Literal["pinned", "shared"] = "pinned"


class XenBusSpec(Strict):
    """virtio-msg between Xen domains: one shared page of two spsc queues, event channels, grants."""

    plugin: ClassVar[str] = "vmsim.buses.xen.bus:XenBus"

    kind: Literal["xen"]
    name: Name
    driver: Name
    frontend: Name
    backend: Name
    layout: Literal["v1", "draft-6b", "vmsim-share"] = "v1"  # draft-6b: the Xen codec's pre-PR28 6-byte header
    queue_format: Literal["spsc-2024", "spsc-2025"] = "spsc-2024"
    queue_bytes: SizeBytes = Field(default=1024, gt=0)
    max_msg_size: SizeBytes | None = None
    shared_page: Literal["grant", "foreign"] = "grant"
    memory: Name | SideMemory
    doorbell: Name
    doorbell_to_driver: Name | None = None
    event_idx: bool = True
    rx_budget: int = Field(default=0, ge=0)
    grants: Literal["map-unmap", "persistent", "copy", "directory"] = "map-unmap"
    grant_batch: int = Field(default=1, ge=1, le=256)
    gfn2mfn: bool = False
    directory_pages: int = Field(default=256, ge=1, le=1 << 20)
    tx_retry: TimeNs = 10_000_000
    tx_retries: int = Field(default=1000, ge=0)

    @property
    def element_size(self) -> int:
        """spsc slots are fixed at 64 bytes: the largest frame the queues carry."""
        return SLOT_SIZE
