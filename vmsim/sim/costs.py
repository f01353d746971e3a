"""Cost models: what touching shared memory costs, and random service/size draws.

Costs are integer nanoseconds computed from the bytes an operation actually moves, so that a
queue format that touches more bytes is charged more.
"""

from __future__ import annotations

import numpy as np

from vmsim.units import MAX_TIME_NS


class MemoryCost:
    """fixed + per started line, for reads and writes; zero bytes cost nothing."""

    __slots__ = ("copy_line", "line", "read_fixed", "read_per_line", "write_fixed", "write_per_line")

    def __init__(self, line_bytes=64, read_fixed=0, read_per_line=0, write_fixed=0, write_per_line=0,
                 copy_line_bytes=None):
        self.line = line_bytes
        self.copy_line = copy_line_bytes or line_bytes
        self.read_fixed = read_fixed
        self.read_per_line = read_per_line
        self.write_fixed = write_fixed
        self.write_per_line = write_per_line

    @classmethod
    def of(cls, kind) -> MemoryCost:
        """From a platform memory kind (anything with the MemoryKind attributes)."""
        return cls(kind.line_bytes, kind.read_fixed, kind.read_per_line, kind.write_fixed, kind.write_per_line,
                   kind.copy_line_bytes)

    def read(self, nbytes: int) -> int:
        if nbytes <= 0:
            return 0
        return self.read_fixed + -(-nbytes // self.line) * self.read_per_line

    def write(self, nbytes: int) -> int:
        if nbytes <= 0:
            return 0
        return self.write_fixed + -(-nbytes // self.line) * self.write_per_line

    def copy_out(self, nbytes: int) -> int:
        """Copying `nbytes` of payload out of this memory, at the access width of a copy."""
        if nbytes <= 0:
            return 0
        return self.read_fixed + -(-nbytes // self.copy_line) * self.read_per_line

    def copy_in(self, nbytes: int) -> int:
        """Copying `nbytes` of payload into this memory, at the access width of a copy."""
        if nbytes <= 0:
            return 0
        return self.write_fixed + -(-nbytes // self.copy_line) * self.write_per_line


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
