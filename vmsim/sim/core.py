"""The simulation context every component shares: clock, logs, random streams, counters.

Components have dotted names (`amp0.to_device`). The name is the log's component column, the
trace track and the seed of the component's own random stream, so adding a component never
shifts another component's draws.
"""

from __future__ import annotations

import zlib

import numpy as np
import simpy

from vmsim.sim.log import EventLog, RequestLog
from vmsim.sim.output import Series


class SimulationError(RuntimeError):
    """The model reached a state a correct model never reaches (an internal bug, not user input)."""


class Simulation:
    """One run: the SimPy environment plus everything components report into."""

    def __init__(self, seed: int, keep_wire: bool = True):
        self.env = simpy.Environment()
        self.seed = seed
        self.log = EventLog(keep_wire=keep_wire)
        self.requests = RequestLog()
        self.counters: dict[str, dict[str, float]] = {}
        self.series: dict[str, Series] = {}
        self.addresses = AddressSpace()
        self.inflight: dict[int, dict] = {}  # ring address -> {descriptor head: request}
        self.init_done: dict[str, int] = {}
        self.completed = 0
        self._next_request_id = 0
        self._progress = None
        self._progress_step = 0
        self._progress_next = 0
        self._progress_total = 0

    def rng(self, name: str) -> np.random.Generator:
        """The random stream of the component called `name`, from the base seed and the name only."""
        return np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(name.encode())]))

    def counter(self, name: str) -> dict[str, float]:
        return self.counters.setdefault(name, {})

    def new_series(self, name: str) -> Series:
        series = self.series[name] = Series()
        return series

    def next_request_id(self) -> int:
        self._next_request_id += 1
        return self._next_request_id

    def report_progress(self, callback, expected_requests: int) -> None:
        """Call `callback(fraction)` about a hundred times as `expected_requests` complete."""
        self._progress = callback
        self._progress_total = expected_requests
        self._progress_step = max(1, expected_requests // 100)
        self._progress_next = self._progress_step

    def completed_one(self) -> None:
        self.completed += 1
        if self._progress is not None and self.completed >= self._progress_next:
            self._progress_next += self._progress_step
            self._progress(min(1.0, self.completed / self._progress_total))


class Component:
    """Base of every simulated part: a name, the shared context and a log id."""

    def __init__(self, sim: Simulation, name: str):
        self.sim = sim
        self.env = sim.env
        self.name = name
        self.log_id = sim.log.components(name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class AddressSpace:
    """Bus addresses of simulated shared memory, mapped back to the bytearray that backs them.

    Virtqueue rings live in real bytes that both sides read and write; the driver hands their
    addresses to the device in SET_VQUEUE and the device maps them back here.
    """

    BASE = 0x4000_0000
    ALIGN = 4096

    def __init__(self):
        self._next = self.BASE
        self._regions: dict[int, bytearray] = {}
        self._addresses: dict[int, int] = {}  # id(buffer) -> address

    def allocate(self, size: int) -> tuple[int, bytearray]:
        address = self._next
        buffer = bytearray(size)
        self._regions[address] = buffer
        self._addresses[id(buffer)] = address
        self._next += -(-max(size, 1) // self.ALIGN) * self.ALIGN
        return address, buffer

    def reserve(self, size: int) -> int:
        """Bus addresses for a window no simulated code reads or writes (a device's shared memory region, which
        only its address and length reach the wire for): no bytes behind it."""
        address = self._next
        self._next += -(-max(size, 1) // self.ALIGN) * self.ALIGN
        return address

    def address_of(self, buffer: bytearray) -> int:
        return self._addresses[id(buffer)]

    def resolve(self, address: int) -> bytearray:
        try:
            return self._regions[address]
        except KeyError:
            raise SimulationError(f"no shared memory at bus address {address:#x}") from None
