"""The scenario schema: pydantic models whose validated values are integers (ns, bytes).

A scenario composes a platform profile (costs), drivers, buses, devices and workloads.
Unknown keys are rejected everywhere (`extra="forbid"`), so a typo is an error, not a
silently ignored setting. Unit strings are parsed here, at the edge; everything below
`vmsim.scenario` sees integer nanoseconds and bytes.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Annotated, Literal, Union

from pydantic import BeforeValidator, Field, create_model, model_validator

from vmsim.buses import doorbell_kinds, sealed
from vmsim.buses.xen.spec import DomainSpec
from vmsim.scenario.faults import FaultSpec
from vmsim.schema import (
    BytesPerSecond,
    ConstantSize,
    ConstantTime,
    Name,
    RateHz,
    SizeBytes,
    SizeDist,
    Strict,
    TimeDist,
    TimeNs,
)
from vmsim.units import parse_time_ns
from vmsim.wire.virtio import DEVICE_IDS

KINDS = sealed()  # the bus kinds this schema is built from

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
    copy_line_bytes: SizeBytes | None = Field(default=None, gt=0)
    """Bytes per access of a payload copy (a byte-wise memcpy over uncached memory moves 1), when it differs
    from the access width the queues and rings are read and written with (`line_bytes`)."""


class DoorbellKind(Strict):
    """An interrupt-style notification: the sender pays `ring`, the handler runs `latency` later."""

    kind: Literal[doorbell_kinds()]  # each bus kind brings its own (vmsim.buses), then `ideal`
    ring: TimeNs = 0
    latency: TimeNs = 0
    ack: TimeNs = 0


class CpuKind(Strict):
    """Software cost per frame handled on a core (encode/decode, dispatch, ring bookkeeping)."""

    frame_handling: TimeNs = 0


class SoftwareKind(Strict):
    """What an endpoint's own software costs per message, on its core, besides the transport's frames.

    `submit`: handing a message to the transport (a syscall and a char device write, an RTOS send call
    taking a buffer); `complete`: handing a received or completed one back (waking the reader, a context
    switch, the syscall's return); `copy_rate`: the rate at which the endpoint's software copies the payload
    itself (copy_from_user / copy_to_user, a rate such as `4 GB/s`), none when it reads and writes the shared
    buffer directly.
    """

    submit: TimeNs = 0
    complete: TimeNs = 0
    copy_rate: BytesPerSecond | None = None


Platform = create_model(
    "Platform",
    __base__=Strict,
    __module__=__name__,
    __doc__="A platform profile: memory, doorbell and cpu kinds, and each bus kind's own cost section "
            "(`xen:`, `ffa:`, ... from `vmsim.buses`), with the citation of every number in `provenance`.",
    name=(str, ...),
    description=(str, ""),
    memory=(dict[Name, MemoryKind], Field(default_factory=dict)),
    doorbells=(dict[Name, DoorbellKind], Field(default_factory=dict)),
    cpus=(dict[Name, CpuKind], Field(default_factory=dict)),
    software=(dict[Name, SoftwareKind], Field(default_factory=dict)),
    **{kind.name: (kind.costs | None, None) for kind in KINDS.values() if kind.costs is not None},
    provenance=(dict[str, str], Field(default_factory=dict)),
)


# --- topology ---------------------------------------------------------------------------------


class Timeouts(Strict):
    """How long the driver waits on its peer and what it does when nothing comes (none of it unless given):
    each request waits `response` for its answer and is sent again `retries` times; then the device is reset
    and initialised again, at most `resets` times in a run, and past that the driver gives up: FAILED. A
    virtqueue with buffers out and none coming back for `queue_stall` is looked at again and kicked; one more
    `queue_stall` without progress resets the queue (RESET_VQUEUE, when ring reset was negotiated) or the
    device."""

    response: TimeNs = Field(gt=0)
    retries: int = Field(default=1, ge=0, le=100)
    resets: int = Field(default=1, ge=0, le=100)
    queue_stall: TimeNs | None = Field(default=None, gt=0)


class Keepalive(Strict):
    """PING on each of the driver's buses every `period`, each waiting `timeout` for its echo; `misses`
    unanswered in a row are tolerated (the next PING is the retry), one more and every device on the bus is
    reset (`outcome: reset`, under the driver's `timeouts`) or given up on with FAILED (`outcome: fail`)."""

    period: TimeNs = Field(gt=0)
    timeout: TimeNs = Field(gt=0)
    misses: int = Field(default=2, ge=0, le=1000)
    outcome: Literal["reset", "fail"] = "reset"

    @model_validator(mode="after")
    def _answer_within_period(self):
        if self.timeout > self.period:
            raise ValueError("keepalive timeout must not exceed its period (one PING at a time)")
        return self


class DriverSpec(Strict):
    name: Name
    cpu: Name | None = None
    discovery: Literal["bus", "platform"] = "bus"
    software: Name | None = None
    data: Literal["copy", "in-place"] = "in-place"
    timeouts: Timeouts | None = None
    keepalive: Keepalive | None = None

    @model_validator(mode="after")
    def _reset_needs_timeouts(self):
        if self.keepalive is not None and self.keepalive.outcome == "reset" and self.timeouts is None:
            raise ValueError("keepalive outcome reset needs `timeouts`, so that the reset's own requests end")
        return self


BusSpec = Annotated[Union[tuple(kind.spec for kind in KINDS.values())], Field(discriminator="kind")]  # noqa: UP007
"""One `buses:` entry: the spec of its `kind`, from the registry of bus kinds (`vmsim.buses`)."""


class Sharing(Strict):
    """How the driver shares a device's buffers: regions of a heap the bus provides, shared and given back
    with acknowledgements under a policy (`vmsim.sim.sharing`)."""

    policy: Literal["on-first-use", "at-allocation", "pool"] = "on-first-use"
    batch: int = Field(default=1, ge=1, le=1024)
    release: Literal["eager", "lazy", "device"] = "eager"
    unsafe_release: bool = False  # reclaim without the device's completion (vmsim.sim.sharing)
    linger: TimeNs = 1_000_000
    pool: int = Field(default=16, ge=1, le=65536)
    heap: SizeBytes = Field(default=4 * 1024 * 1024, ge=4096)
    memory_type: Literal["normal", "non-cacheable", "device"] = "normal"
    bounce: bool = False
    ack_timeout: TimeNs = Field(default=10_000_000, gt=0)
    retries: int = Field(default=3, ge=0, le=1000)
    ack_loss: float = Field(default=0.0, ge=0, lt=1)
    ack_delay: TimeDist = Field(default_factory=ConstantTime)


class VqueueReset(Strict):
    """The driver resets virtqueue `vq` at `at` with RESET_VQUEUE and sets it up again (needs `ring_reset`)."""

    at: TimeNs
    vq: int = Field(default=0, ge=0)


class ShmRegion(Strict):
    """A shared memory region the device exposes (GET_SHM): its id and length."""

    id: int = Field(ge=0, le=255)
    length: SizeBytes = Field(gt=0, le=2**30)


class DeviceSpec(Strict):
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
    software: Name | None = None
    engine: Literal["cpu", "hardware"] = "cpu"
    added_at: TimeNs | None = None
    removed_at: TimeNs | None = None
    reset_at: TimeNs | None = None
    config_changes: list[TimeNs] = Field(default_factory=list, max_length=1000)
    config_writes: list[TimeNs] = Field(default_factory=list, max_length=1000)
    needs_reset_at: list[TimeNs] = Field(default_factory=list, max_length=1000)
    ring_reset: bool = False
    vqueue_resets: list[VqueueReset] = Field(default_factory=list, max_length=1000)
    shm: list[ShmRegion] = Field(default_factory=list, max_length=256)
    sharing: Sharing | None = None

    @model_validator(mode="after")
    def _known_kind(self):
        if self.kind not in DEVICE_IDS:
            raise ValueError(f"unknown device kind {self.kind!r} (use one of {', '.join(DEVICE_IDS)})")
        if self.queue_size & (self.queue_size - 1):
            raise ValueError("queue_size must be a power of two (split virtqueue)")
        for key in ("config_changes", "config_writes", "needs_reset_at"):
            if any(later <= earlier for earlier, later in pairwise(getattr(self, key))):
                raise ValueError(f"{key} must be in increasing order")
        if self.config_writes and not self.config_size:
            raise ValueError("config_writes need a config space (config_size above 0)")
        if self.ring_reset and self.feature_bits <= 40:
            raise ValueError("ring_reset is feature bit 40: give feature_bits of 64 or more")
        if self.vqueue_resets and not self.ring_reset:
            raise ValueError("vqueue_resets need ring_reset: true (VIRTIO_F_RING_RESET offered by the device)")
        if any(entry.vq >= self.queues for entry in self.vqueue_resets):
            raise ValueError(f"vqueue_resets name a vq beyond the device's {self.queues} queues")
        ids = [region.id for region in self.shm]
        if len(ids) != len(set(ids)):
            raise ValueError("shm region ids must be unique")
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


class WorkloadSpec(Strict):
    name: Name
    device: Name
    vq: int = Field(default=0, ge=0)
    arrivals: Arrivals
    size: SizeDist = Field(default_factory=ConstantSize)
    requests: int | None = Field(default=None, ge=1)
    start: TimeNs = 0
    buffers: Buffers | None = None
    payload: Literal["to-device", "from-device", "both"] = "to-device"


def _fraction(value):
    """'15%' -> 0.15; a bare number is already a fraction."""
    if isinstance(value, str) and value.strip().endswith("%"):
        number = value.strip()[:-1].strip()
        if not re.fullmatch(r"\d+(\.\d+)?", number, re.ASCII):
            raise ValueError(f"cannot read {value!r} as a percentage")
        return float(number) / 100
    return value


class PublishedPoint(Strict):
    """One published value and the overrides that put the scenario in its conditions (a message size)."""

    label: str = Field(min_length=1, max_length=80)
    value: float = Field(gt=0, allow_inf_nan=False)
    set: dict[str, object] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _read_value(cls, data):
        """A latency may be written with its unit ("17.43 us"): it is compared in ns."""
        if isinstance(data, dict) and isinstance(data.get("value"), str):
            data = {**data, "value": parse_time_ns(data["value"])}
        return data


class Published(Strict):
    """A published measurement this scenario reproduces: the calibration suite's entry (`vmsim calibrate`).

    The simulated figure is the summary's `metric` (a dotted key of summary.json) times `scale` (0.5 for a
    one-way figure published as half a round trip). `fitted` names the parameters fitted to this figure, or
    is empty: the suite reports the figures nothing was fitted to apart, as the ones that test the model.
    """

    figure: str = Field(min_length=1)
    source: str = Field(min_length=1)
    conditions: str = Field(min_length=1)
    metric: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
    scale: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    tolerance: Annotated[float, BeforeValidator(_fraction)] = Field(gt=0, lt=1)
    fitted: str = ""
    points: list[PublishedPoint] = Field(min_length=1)


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
    drivers: list[DriverSpec] = Field(min_length=1)
    domains: list[DomainSpec] = Field(default_factory=list)
    buses: list[BusSpec] = Field(min_length=1)
    devices: list[DeviceSpec] = Field(min_length=1)
    workloads: list[WorkloadSpec] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    published: Published | None = None
    faults: list[FaultSpec] = Field(default_factory=list)  # vmsim.scenario.faults

    @model_validator(mode="after")
    def _bounded(self):
        if self.duration is None and any(w.requests is None for w in self.workloads):
            raise ValueError("give `duration`, or `requests` on every workload, so the run ends")
        if self.duration is None and any(d.keepalive is not None for d in self.drivers):
            raise ValueError("give `duration` with a driver's keepalive: its PINGs never end on their own")
        return self
