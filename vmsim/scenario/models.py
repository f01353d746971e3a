"""The scenario schema: pydantic models whose validated values are integers (ns, bytes).

A scenario composes a platform profile (costs), drivers, buses, devices and workloads.
Unknown keys are rejected everywhere (`extra="forbid"`), so a typo is an error, not a
silently ignored setting. Unit strings are parsed here, at the edge; everything below
`vmsim.scenario` sees integer nanoseconds and bytes.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vmsim.units import parse_rate_hz, parse_size_bytes, parse_time_ns
from vmsim.wire.spsc import SLOT_SIZE
from vmsim.wire.virtio import DEVICE_IDS

TimeNs = Annotated[int, BeforeValidator(parse_time_ns)]
SizeBytes = Annotated[int, BeforeValidator(parse_size_bytes)]
RateHz = Annotated[float, BeforeValidator(parse_rate_hz)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$", max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


# --- distributions ----------------------------------------------------------------------------
# Times and sizes share the same shapes; the quantity type decides how a unit string is read.


class ConstantTime(Strict):
    dist: Literal["constant"] = "constant"
    value: TimeNs = 0


class ExponentialTime(Strict):
    dist: Literal["exponential"]
    mean: TimeNs


class LognormalTime(Strict):
    """Lognormal with the given mean; `sigma` is the shape (std-dev of the underlying normal). The mean is
    positive: a lognormal cannot have mean 0 (that is `constant`)."""

    dist: Literal["lognormal"]
    mean: TimeNs = Field(gt=0)
    sigma: float = Field(gt=0, le=5)


class UniformTime(Strict):
    dist: Literal["uniform"]
    low: TimeNs
    high: TimeNs

    @model_validator(mode="after")
    def _ordered(self):
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self


class Weighted(Strict):
    """Empirical draws: each of `values` with probability proportional to its weight (equal without).

    Subclasses declare `values`, then `weights`, so that the weights are checked against the values."""

    @field_validator("weights", check_fields=False)
    @classmethod
    def _weights_match(cls, weights: list[float] | None, info: ValidationInfo):
        if weights is None:
            return weights
        values = info.data.get("values")
        if values is not None and len(weights) != len(values):
            raise ValueError(f"{len(weights)} weights for {len(values)} values: give one per value")
        if not all(math.isfinite(w) and w >= 0 for w in weights) or not 0 < sum(weights) < math.inf:
            raise ValueError("weights must be finite, non-negative and not all zero")
        return weights


class EmpiricalTime(Weighted):
    """Draw from measured samples, with optional weights."""

    dist: Literal["empirical"]
    values: list[TimeNs] = Field(min_length=1)
    weights: list[float] | None = None


TimeDist = Annotated[
    ConstantTime | ExponentialTime | LognormalTime | UniformTime | EmpiricalTime,
    Field(discriminator="dist"),
]


class ConstantSize(Strict):
    dist: Literal["constant"] = "constant"
    value: SizeBytes = 64


class UniformSize(Strict):
    dist: Literal["uniform"]
    low: SizeBytes
    high: SizeBytes

    @model_validator(mode="after")
    def _ordered(self):
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self


class EmpiricalSize(Weighted):
    dist: Literal["empirical"]
    values: list[SizeBytes] = Field(min_length=1)
    weights: list[float] | None = None


SizeDist = Annotated[ConstantSize | UniformSize | EmpiricalSize, Field(discriminator="dist")]


# --- platform profile -------------------------------------------------------------------------


class MemoryKind(Strict):
    """Cost of touching shared memory: fixed + per started line, for reads and writes.

    Coherent memory moves cache lines between cores; non-cacheable memory pays per access;
    PCIe pays a posted write issue or a read round trip. One model covers all three.
    """

    line_bytes: SizeBytes = Field(default=64, gt=0)
    read_fixed: TimeNs = 0
    read_per_line: TimeNs = 0
    write_fixed: TimeNs = 0
    write_per_line: TimeNs = 0


class DoorbellKind(Strict):
    """An interrupt-style notification: the sender pays `ring`, the handler runs `latency` later."""

    kind: Literal["ipi", "mailbox", "pcie-bar", "msi-x", "evtchn", "ffa-notification", "ideal"]
    ring: TimeNs = 0
    latency: TimeNs = 0
    ack: TimeNs = 0


class CpuKind(Strict):
    """Software cost per frame handled on a core (encode/decode, dispatch, ring bookkeeping)."""

    frame_handling: TimeNs = 0


class XenCosts(Strict):
    """What the Xen hypervisor operations of a Xen bus cost (event-channel send and upcall are doorbells).

    Grant operations include their hypercall; `tlb_*` is the flush that follows each grant unmap.
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
    grant_copy: TimeNs = 0
    memcpy_per_kib: TimeNs = 0
    gfn2mfn: TimeNs = 0


class FfaMemoryOp(Strict):
    """One FF-A memory call's own work beyond its world switches: fixed + per 4 KiB page."""

    fixed: TimeNs = 0
    per_page: TimeNs = 0


class FfaPartition(Strict):
    """An FF-A endpoint that serves virtio devices. `kind` says where it runs, hence which hops a message
    crosses: `optee` (OP-TEE is the S-EL1 SPMC and the partition), `hafnium` (an S-EL1 partition under
    the S-EL2 Hafnium SPMC), `vm` (a normal-world VM behind the hypervisor, VM to VM)."""

    kind: Literal["optee", "hafnium", "vm"]
    vcpus: int = Field(default=1, ge=1, le=256)
    features: list[Literal["direct", "indirect", "notif", "fifo"]] = Field(
        default_factory=lambda: ["direct", "indirect", "notif", "fifo"])
    max_areas: int = Field(default=255, ge=1, le=0xFFFF)

    @model_validator(mode="after")
    def _can_bootstrap(self):
        if not {"direct", "indirect"} & set(self.features):
            raise ValueError("features need direct or indirect: the bus bootstraps over one of them (L-26)")
        return self


class FfaHypervisor(Strict):
    """A hypervisor between the driver's VM and the SPMD (Xen FF-A mediator, KVM/pKVM); per pass."""

    trap: TimeNs = 0
    forward: TimeNs = 0
    vm_switch: TimeNs = 0


class FfaCosts(Strict):
    """FF-A world switches, partition switches and memory calls, per pass (one way); all 0 by default."""

    el3_switch: TimeNs = 0
    spmd_context: TimeNs = 0
    spmc_dispatch: TimeNs = 0
    sel2_switch: TimeNs = 0
    mem_share: FfaMemoryOp = Field(default_factory=FfaMemoryOp)
    mem_retrieve: FfaMemoryOp = Field(default_factory=FfaMemoryOp)
    mem_relinquish: FfaMemoryOp = Field(default_factory=FfaMemoryOp)
    mem_reclaim: FfaMemoryOp = Field(default_factory=FfaMemoryOp)
    tlb_maintenance: TimeNs = 0
    hypervisors: dict[Name, FfaHypervisor] = Field(default_factory=dict)
    partitions: dict[Name, FfaPartition] = Field(default_factory=dict)


class Platform(Strict):
    name: str
    description: str = ""
    memory: dict[Name, MemoryKind] = Field(default_factory=dict)
    doorbells: dict[Name, DoorbellKind] = Field(default_factory=dict)
    cpus: dict[Name, CpuKind] = Field(default_factory=dict)
    xen: XenCosts | None = None
    ffa: FfaCosts | None = None
    provenance: dict[str, str] = Field(default_factory=dict)


# --- topology ---------------------------------------------------------------------------------


class Driver(Strict):
    name: Name
    cpu: Name | None = None
    discovery: Literal["bus", "platform"] = "bus"


class SideMemory(Strict):
    driver: Name
    device: Name


class AmpBus(Strict):
    """Shared-memory queues plus doorbells between heterogeneous cores."""

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


class Domain(Strict):
    """A Xen domain at one end of Xen buses; its vCPUs serve every bus it is on."""

    name: Name
    kind: Literal["dom0", "domd", "domu"] = "domu"
    vcpus: int = Field(default=1, ge=1, le=512)
    pcpu: Literal["pinned", "shared"] = "pinned"


class XenBus(Strict):
    """virtio-msg between Xen domains: one shared page of two spsc queues, event channels, grants."""

    kind: Literal["xen"]
    name: Name
    driver: Name
    frontend: Name
    backend: Name
    layout: Literal["draft-6b", "v1", "vmsim-share"] = "draft-6b"
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
    gfn2mfn: bool = False
    directory_pages: int = Field(default=256, ge=1, le=1 << 20)
    tx_retry: TimeNs = 10_000_000
    tx_retries: int = Field(default=1000, ge=0)

    @property
    def element_size(self) -> int:
        """spsc slots are fixed at 64 bytes: the largest frame the queues carry."""
        return SLOT_SIZE


class FfaBus(Strict):
    """virtio-msg over Arm FF-A between the driver's endpoint and a partition (reference §4)."""

    kind: Literal["ffa"]
    name: Name
    driver: Name
    layout: Literal["ffa-2026", "ffa-2025"] = "ffa-2026"
    partition: Name
    hypervisor: Name | None = None
    method: Literal["direct", "indirect", "fifo"] = "direct"
    events: Literal["notif", "poll", "indirect"] | None = None  # by layout: notif (2026), indirect (2025)
    max_msg_size: SizeBytes = Field(default=104, gt=0)
    memory: Name | SideMemory
    notification: Name
    sharing: Literal["probe", "per-buffer"] = "probe"
    share_op: Literal["share", "lend"] = "share"
    pool_size: SizeBytes = Field(default=4 * 1024 * 1024, ge=4096)
    release: Literal["driver", "device"] = "driver"
    unmap_delay: TimeNs = 0
    fifo_size: SizeBytes = Field(default=16 * 1024, ge=4096, le=0xFFFF * 4096)
    poll_interval: TimeNs = Field(default=100_000_000, gt=0)
    poll_budget: int = Field(default=64, ge=1)
    when_busy: Literal["wait", "busy-response"] = "wait"
    busy_retries: int = Field(default=3, ge=1)
    yield_probability: float = Field(default=0.0, ge=0, le=1)
    driver_sleep: TimeDist = Field(
        default_factory=lambda: UniformTime(dist="uniform", low=1_000_000, high=2_000_000))
    tx_busy_retries: int = Field(default=10, ge=1)
    mem_retries: int = Field(default=20, ge=1)
    mem_backoff: TimeNs = 20_000_000
    mem_backoff_max: TimeNs = 100_000_000
    event_idx: bool = True

    @model_validator(mode="after")
    def _events_of_the_generation(self):
        """Left out, `events` is what the generation does: NOTIF on 2026, indirect messages on 2025 (which
        has no EVENT_CONFIGURE); a value that does not fit the layout is a topology problem at its key."""
        if self.events is None:
            self.events = "indirect" if self.layout == "ffa-2025" else "notif"
        return self


Bus = Annotated[AmpBus | XenBus | FfaBus, Field(discriminator="kind")]



class Sharing(Strict):
    """How the driver shares a device's buffers: regions of a heap the bus provides, shared and given back
    with acknowledgements under a policy (`vmsim.sim.sharing`)."""

    policy: Literal["on-first-use", "at-allocation", "pool"] = "on-first-use"
    batch: int = Field(default=1, ge=1, le=1024)
    release: Literal["eager", "lazy", "device"] = "eager"
    linger: TimeNs = 1_000_000
    pool: int = Field(default=16, ge=1, le=65536)
    heap: SizeBytes = Field(default=4 * 1024 * 1024, ge=4096)
    memory_type: Literal["normal", "non-cacheable", "device"] = "normal"
    bounce: bool = False
    ack_timeout: TimeNs = Field(default=10_000_000, gt=0)
    retries: int = Field(default=3, ge=0, le=1000)
    ack_loss: float = Field(default=0.0, ge=0, lt=1)
    ack_delay: TimeDist = Field(default_factory=ConstantTime)


class Device(Strict):
    name: Name
    bus: Name
    dev_num: int = Field(ge=0, le=0xFFFF)
    kind: str = "generic"
    cpu: Name | None = None
    queues: int = Field(default=1, ge=1, le=64)
    queue_size: int = Field(default=64, ge=1, le=32768)
    config_size: SizeBytes = Field(default=16, le=4096)
    feature_bits: int = Field(default=64, ge=32, le=4096, multiple_of=32)
    service: TimeDist = Field(default_factory=ConstantTime)
    data: Literal["copy", "in-place"] = "in-place"
    added_at: TimeNs | None = None
    removed_at: TimeNs | None = None
    reset_at: TimeNs | None = None
    sharing: Sharing | None = None

    @model_validator(mode="after")
    def _known_kind(self):
        if self.kind not in DEVICE_IDS:
            raise ValueError(f"unknown device kind {self.kind!r} (use one of {', '.join(DEVICE_IDS)})")
        if self.queue_size & (self.queue_size - 1):
            raise ValueError("queue_size must be a power of two (split virtqueue)")
        return self


class PoissonArrivals(Strict):
    kind: Literal["poisson"]
    rate: RateHz


class ConstantArrivals(Strict):
    kind: Literal["constant"]
    rate: RateHz


class TraceArrivals(Strict):
    """A CSV of `time` (unit strings or ns) and optional `size` columns, relative to the start."""

    kind: Literal["trace"]
    file: str


class ClosedLoop(Strict):
    kind: Literal["closed"]
    outstanding: int = Field(ge=1, le=65536)
    think: TimeDist = Field(default_factory=ConstantTime)


Arrivals = Annotated[
    PoissonArrivals | ConstantArrivals | TraceArrivals | ClosedLoop, Field(discriminator="kind")
]


class Buffers(Strict):
    """A workload's stream of shared buffers: each carries `uses` requests, or lives `lifetime`, whichever
    ends first (its device needs `sharing:`)."""

    uses: int = Field(default=1, ge=1)
    lifetime: TimeNs | None = Field(default=None, gt=0)


class Workload(Strict):
    name: Name
    device: Name
    vq: int = Field(default=0, ge=0)
    arrivals: Arrivals
    size: SizeDist = Field(default_factory=ConstantSize)
    requests: int | None = Field(default=None, ge=1)
    start: TimeNs = 0
    buffers: Buffers | None = None


class Limits(Strict):
    """Guards against runaway runs, each stopping the run with one line when passed (raise them to go on).

    backlog: requests an open-loop workload may have waiting (submitted, not completed). A saturated
    queue at a p99 target holds hundreds; millions means the load exceeds capacity and the run would only
    spend minutes and gigabytes to say so.
    """

    backlog: int = Field(default=100_000, ge=1, lt=2**62)


class Scenario(Strict):
    name: Name
    description: str = ""
    seed: int = Field(default=1, ge=0, lt=2**63)
    platform: Platform
    duration: TimeNs | None = None
    warmup: TimeNs = 0
    keep_wire: bool = True
    drivers: list[Driver] = Field(min_length=1)
    domains: list[Domain] = Field(default_factory=list)
    buses: list[Bus] = Field(min_length=1)
    devices: list[Device] = Field(min_length=1)
    workloads: list[Workload] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)

    @model_validator(mode="after")
    def _bounded(self):
        if self.duration is None and any(w.requests is None for w in self.workloads):
            raise ValueError("give `duration`, or `requests` on every workload, so the run ends")
        return self
