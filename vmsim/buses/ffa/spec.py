"""The `buses:` entry of an FF-A bus and its platform costs (`platform.ffa`); pydantic only."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from vmsim.schema import Name, SideMemory, SizeBytes, Strict, TimeDist, TimeNs, UniformTime


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


class FfaBusSpec(Strict):
    """virtio-msg over Arm FF-A between the driver's endpoint and a partition (reference §4)."""

    plugin: ClassVar[str] = "vmsim.buses.ffa.bus:FfaBus"

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
    lost_poll: Literal["repoll", "wait"] = "repoll"  # an EVENT_POLL refused busy through every retry
    reset_at: TimeNs | None = None  # the driver sends the bus RESET then (a partition or VM reset)
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
