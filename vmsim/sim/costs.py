"""Cost models: what touching shared memory costs, and random service/size draws.

Costs are integer nanoseconds computed from the bytes an operation actually moves, so that a
queue format that touches more bytes is charged more.
"""

from __future__ import annotations

import numpy as np

from vmsim.units import MAX_TIME_NS

TRAFFIC = ("bytes_read", "bytes_written", "cache_lines")
"""What a memory cost counts per region and side, in its bus's counters as `memory.<region>.<side>.<name>`."""


class MemoryCost:
    """fixed + per started line, for reads and writes; zero bytes cost nothing.

    Each access also counts its bytes and the cache lines it starts (the lines it is charged for) in the
    counters it was given (`counted`): a region of a bus (`queue`, `virtqueue`, ...) seen from one side.
    Payload copies (`copy_in`, `copy_out`) count in that side's `payload` region, at the copy's access width.
    A cost no bus counted keeps its counts in a dict of its own, which nothing reports.
    """

    __slots__ = ("copy_line", "copy_lines_key", "copy_read_key", "copy_written_key", "counts", "line", "lines_key",
                 "read_fixed", "read_key", "read_per_line", "region", "write_fixed", "write_per_line",
                 "written_key")

    def __init__(self, line_bytes=64, read_fixed=0, read_per_line=0, write_fixed=0, write_per_line=0,
                 copy_line_bytes=None):
        self.line = line_bytes
        self.copy_line = copy_line_bytes or line_bytes
        self.read_fixed = read_fixed
        self.read_per_line = read_per_line
        self.write_fixed = write_fixed
        self.write_per_line = write_per_line
        self.count_in({}, "uncounted", "either")

    @classmethod
    def of(cls, kind) -> MemoryCost:
        """From a platform memory kind (anything with the MemoryKind attributes)."""
        return cls(kind.line_bytes, kind.read_fixed, kind.read_per_line, kind.write_fixed, kind.write_per_line,
                   kind.copy_line_bytes)

    def count_in(self, counts: dict, region: str, side: str) -> None:
        """Count from now on in `counts` (a bus's counters) as `memory.<region>.<side>.*`, payload copies as
        `memory.payload.<side>.*`; the keys start at zero."""
        self.counts, self.region = counts, region
        self.read_key, self.written_key, self.lines_key = traffic_keys(region, side)
        self.copy_read_key, self.copy_written_key, self.copy_lines_key = traffic_keys("payload", side)
        for key in (*traffic_keys(region, side), *traffic_keys("payload", side)):
            counts.setdefault(key, 0)

    def counted(self, counts: dict, region: str, side: str) -> MemoryCost:
        """The same costs, counting in `counts` as `region` seen from `side` (see `count_in`)."""
        twin = MemoryCost(self.line, self.read_fixed, self.read_per_line, self.write_fixed, self.write_per_line,
                          self.copy_line)
        twin.count_in(counts, region, side)
        return twin

    def access(self, nread: int, nwritten: int) -> int:
        """Reading `nread` bytes and writing `nwritten` (one access each way, as a ring step makes): its cost,
        its traffic counted."""
        cost = 0
        counts = self.counts
        if nread > 0:
            lines = -(-nread // self.line)
            counts[self.read_key] += nread
            counts[self.lines_key] += lines
            cost = self.read_fixed + lines * self.read_per_line
        if nwritten > 0:
            lines = -(-nwritten // self.line)
            counts[self.written_key] += nwritten
            counts[self.lines_key] += lines
            cost += self.write_fixed + lines * self.write_per_line
        return cost

    def read(self, nbytes: int) -> int:
        return self.access(nbytes, 0)

    def write(self, nbytes: int) -> int:
        return self.access(0, nbytes)

    def copy_out(self, nbytes: int) -> int:
        """Copying `nbytes` of payload out of this memory, at the access width of a copy."""
        if nbytes <= 0:
            return 0
        lines = -(-nbytes // self.copy_line)
        counts = self.counts
        counts[self.copy_read_key] += nbytes
        counts[self.copy_lines_key] += lines
        return self.read_fixed + lines * self.read_per_line

    def copy_in(self, nbytes: int) -> int:
        """Copying `nbytes` of payload into this memory, at the access width of a copy."""
        if nbytes <= 0:
            return 0
        lines = -(-nbytes // self.copy_line)
        counts = self.counts
        counts[self.copy_written_key] += nbytes
        counts[self.copy_lines_key] += lines
        return self.write_fixed + lines * self.write_per_line

    def placed(self, accesses) -> RepeatedAccess:
        """Accesses at known places (`vmsim.wire.accesses.Access`: offset, bytes, read or written) made again
        and again (a queue operation): the reads, and the writes, that share a line are one access of the lines
        they cover together; the cost is worked out once here, without counting, and `RepeatedAccess.count()`
        counts the traffic each time they are made."""
        line = self.line
        groups: dict[bool, list[list]] = {False: [], True: []}  # per direction: [bytes, lines] per access
        for offset, nbytes, write in accesses:
            if nbytes <= 0:
                continue
            lines = set(range(offset // line, (offset + nbytes - 1) // line + 1))
            for group in groups[write]:
                if group[1] & lines:
                    group[0] += nbytes
                    group[1] |= lines
                    break
            else:
                groups[write].append([nbytes, lines])
        return RepeatedAccess(self, [(nbytes, len(lines)) for nbytes, lines in groups[False]],
                              [(nbytes, len(lines)) for nbytes, lines in groups[True]])


class RepeatedAccess:
    """A fixed set of reads and writes of one memory, each (bytes, lines): `cost` once, its traffic counted per
    `count()`."""

    __slots__ = ("bytes_read", "bytes_written", "cache_lines", "cost", "memory")

    def __init__(self, memory: MemoryCost, reads: list[tuple[int, int]], writes: list[tuple[int, int]]):
        self.memory = memory
        self.bytes_read = sum(nbytes for nbytes, _ in reads)
        self.bytes_written = sum(nbytes for nbytes, _ in writes)
        read_lines = sum(lines for _, lines in reads)
        write_lines = sum(lines for _, lines in writes)
        self.cache_lines = read_lines + write_lines
        self.cost = (len(reads) * memory.read_fixed + read_lines * memory.read_per_line
                     + len(writes) * memory.write_fixed + write_lines * memory.write_per_line)

    def count(self) -> None:
        memory = self.memory
        counts = memory.counts
        counts[memory.read_key] += self.bytes_read
        counts[memory.written_key] += self.bytes_written
        counts[memory.lines_key] += self.cache_lines


def traffic_keys(region: str, side: str) -> tuple[str, str, str]:
    """The counter names of `region` seen from `side`: bytes read, bytes written, cache lines."""
    return tuple(f"memory.{region}.{side}.{name}" for name in TRAFFIC)


def count_bus_memory(bus) -> None:
    """Count the memory a bus plug-in left uncounted (its `driver_memory` and `device_memory`) as its `shared`
    region, each side apart: a plug-in that tells its regions apart (AMP) counted them itself. One object
    serving both sides counts as the driver's."""
    for side, memory in (("driver", bus.driver_memory), ("device", bus.device_memory)):
        if memory is not None and memory is not FREE_MEMORY and memory.region == "uncounted":
            memory.count_in(bus.counts, "shared", side)


FREE_MEMORY = MemoryCost()


class SoftwareCost:
    """An endpoint's own software per message (a `software:` kind of the platform), in integer ns."""

    __slots__ = ("complete", "ns_per_byte", "submit")

    def __init__(self, submit: int = 0, complete: int = 0, copy_bytes_per_s: float | None = None):
        self.submit = submit
        self.complete = complete
        self.ns_per_byte = 1e9 / copy_bytes_per_s if copy_bytes_per_s else 0.0

    @classmethod
    def of(cls, spec) -> SoftwareCost:
        return cls(spec.submit, spec.complete, spec.copy_rate)

    def copy(self, nbytes: int) -> int:
        """The endpoint's own copy of `nbytes` of payload."""
        return round(nbytes * self.ns_per_byte) if nbytes > 0 else 0


NO_SOFTWARE = SoftwareCost()

_FIRST_BATCH = 16
_MAX_BATCH = 4096


class Sampler:
    """Integer draws from a distribution, taken from numpy in batches that double up to 4096 draws,
    so a thousand lightly used components do not each draw thousands of values they never use."""

    __slots__ = ("_batch", "_draw", "_index", "_size", "constant")

    def __init__(self, draw, constant: int | None = None):
        self._draw = draw
        self._batch: list[int] = []
        self._index = 0
        self._size = _FIRST_BATCH
        self.constant = constant

    def __call__(self) -> int:
        if self.constant is not None:
            return self.constant
        if self._index >= len(self._batch):
            self._batch = self._draw(self._size).tolist()
            self._size = min(2 * self._size, _MAX_BATCH)
            self._index = 0
        value = self._batch[self._index]
        self._index += 1
        return value


def whole_ns(draws: np.ndarray) -> np.ndarray:
    """Float draws as int64 ns, a heavy tail capped at `MAX_TIME_NS` so that no draw wraps round int64."""
    return np.rint(np.minimum(draws, MAX_TIME_NS)).astype(np.int64)


def sampler(dist, rng: np.random.Generator) -> Sampler:
    """A sampler of integer ns (or bytes) for one of the scenario's distribution models."""
    kind = dist.dist
    if kind == "constant":
        return Sampler(None, constant=int(dist.value))
    if kind == "exponential":
        mean = dist.mean
        return Sampler(lambda n: whole_ns(rng.exponential(mean, n)))
    if kind == "lognormal":
        mu = np.log(dist.mean) - dist.sigma**2 / 2 if dist.mean > 0 else 0.0
        sigma = dist.sigma
        return Sampler(lambda n: whole_ns(rng.lognormal(mu, sigma, n)))
    if kind == "uniform":
        low, high = dist.low, dist.high
        return Sampler(lambda n: rng.integers(low, high, n, endpoint=True))
    if kind == "empirical":
        values = np.asarray(dist.values, dtype=np.int64)
        weights = None
        if dist.weights is not None:
            weights = np.asarray(dist.weights, dtype=float)
            weights = weights / weights.sum()
        return Sampler(lambda n: rng.choice(values, size=n, p=weights))
    raise ValueError(f"unknown distribution {kind!r}")
