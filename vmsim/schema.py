"""The vocabulary of scenario files: strict pydantic models, unit-typed fields and distributions.

It sits beneath both the bus kinds' specs (`vmsim.buses.<kind>.spec`) and the scenario schema
(`vmsim.scenario.models`), so that a bus kind describes its own entry without importing the scenario.
Unit strings are parsed here, at the edge: every validated value is integer nanoseconds or bytes.
Standard library, pydantic and `vmsim.units` only.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from vmsim.units import parse_bandwidth, parse_rate_hz, parse_size_bytes, parse_time_ns

TimeNs = Annotated[int, BeforeValidator(parse_time_ns)]
SizeBytes = Annotated[int, BeforeValidator(parse_size_bytes)]
RateHz = Annotated[float, BeforeValidator(parse_rate_hz)]
BytesPerSecond = Annotated[float, BeforeValidator(parse_bandwidth),
                           PlainSerializer(lambda rate: f"{rate!r} B/s", when_used="json")]
"""A bandwidth: its unit is required on input ("2 GB/s"), so the resolved config writes it in B/s."""
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


class Ordered(Strict):
    """A range whose `high` may not be below its `low` (subclasses declare both)."""

    @model_validator(mode="after")
    def _ordered(self):
        if self.high < self.low:
            raise ValueError("high must be >= low")
        return self


class UniformTime(Ordered):
    dist: Literal["uniform"]
    low: TimeNs
    high: TimeNs


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


class UniformSize(Ordered):
    dist: Literal["uniform"]
    low: SizeBytes
    high: SizeBytes


class EmpiricalSize(Weighted):
    dist: Literal["empirical"]
    values: list[SizeBytes] = Field(min_length=1)
    weights: list[float] | None = None


SizeDist = Annotated[ConstantSize | UniformSize | EmpiricalSize, Field(discriminator="dist")]


class SideMemory(Strict):
    driver: Name
    device: Name
