"""Unit strings at the edges, integers inside.

Scenario files and the command line speak "1.5 us", "4 KiB", "10 kHz", "2 GB/s"; the simulator
speaks integer nanoseconds and integer bytes, so that mixing 20 ns and 100 ms never drifts.
Every parser raises `ValueError` with a short reason; the scenario layer turns it into a
`ScenarioError` naming the file, line and key.

Limits, checked after the unit is applied (so "1e300 s" is refused, not overflowed): a time is at
most `MAX_TIME_NS` = 2**60 ns (about 36 years) and a size at most `MAX_SIZE_BYTES` = 2**40 bytes
(1 TiB), so that sums of a few of them still fit the int64 columns of the result tables; a rate is
at least `MIN_RATE_HZ`, whose mean gap is `MAX_TIME_NS`. Numbers are ASCII digits only ("５ us" is
not a number here, whatever `float` says).
"""

from __future__ import annotations

import math
import re

_NUMBER = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
_QUANTITY = re.compile(rf"\s*{_NUMBER}\s*([A-Za-z/µ]*)\s*", re.ASCII)  # ASCII: \d is 0-9 only

MAX_TIME_NS = 2**60
MAX_SIZE_BYTES = 2**40
MIN_RATE_HZ = 1e9 / MAX_TIME_NS

TIME_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
SIZE_UNITS = {
    "b": 1, "B": 1,
    "KB": 1_000, "kB": 1_000, "MB": 1_000_000, "GB": 1_000_000_000,
    "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3,
}
RATE_UNITS = {"Hz": 1.0, "/s": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}
BANDWIDTH_UNITS = {
    "B/s": 1.0, "KB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9,
    "KiB/s": 1024.0, "MiB/s": 1024.0**2, "GiB/s": 1024.0**3,
}


def _split(text: str | float, kind: str) -> tuple[float, str]:
    if isinstance(text, bool):
        raise ValueError(f"expected a {kind}, got {text!r}")  # noqa: TRY004 - pydantic reports ValueError
    if isinstance(text, (int, float)):
        try:
            return float(text), ""
        except OverflowError:  # an integer beyond any float
            raise ValueError(f"{kind} {_shown(text)} is out of range") from None
    if not isinstance(text, str):
        raise ValueError(f"expected a {kind}, got a {type(text).__name__}")  # noqa: TRY004
    match = _QUANTITY.fullmatch(text)
    if not match:
        raise ValueError(f"cannot read {_shown(text)} as a {kind}")
    return float(match.group(1)), match.group(2)


def _shown(value) -> str:
    """A value quoted for a message, cut short: an error line must stay one readable line."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"<a {value.bit_length()}-bit integer>"  # repr of a huge int is long, or refused outright
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _scaled(text, kind: str, units: dict, bare_allowed: bool) -> float:
    value, unit = _split(text, kind)
    if unit == "" and not bare_allowed:
        raise ValueError(f"{kind} {_shown(text)} needs a unit (one of {', '.join(u for u in units if u)})")
    if unit == "":
        scale = 1.0
    elif unit in units:
        scale = units[unit]
    else:
        raise ValueError(f"unknown {kind} unit {unit!r} in {_shown(text)} (use one of {', '.join(u for u in units if u)})")
    scaled = value * scale
    if not math.isfinite(value):
        raise ValueError(f"{kind} {_shown(text)} is not finite")
    if not math.isfinite(scaled):
        raise ValueError(f"{kind} {_shown(text)} is out of range")
    return scaled


def parse_time_ns(text: str | float) -> int:
    """'1.5 us' -> 1500. A bare number is taken as nanoseconds."""
    value = _scaled(text, "duration", TIME_UNITS, bare_allowed=True)
    if value < 0:
        raise ValueError(f"duration {_shown(text)} is negative")
    if value > MAX_TIME_NS:
        raise ValueError(f"duration {_shown(text)} is longer than the limit of 2**60 ns (about 36 years)")
    return round(value)


def parse_size_bytes(text: str | float) -> int:
    """'4 KiB' -> 4096. A bare number is taken as bytes; fractions of a byte are refused."""
    value = _scaled(text, "size", SIZE_UNITS, bare_allowed=True)
    if value < 0:
        raise ValueError(f"size {_shown(text)} is negative")
    if value > MAX_SIZE_BYTES:
        raise ValueError(f"size {_shown(text)} is larger than the limit of 2**40 bytes (1 TiB)")
    if value != int(value):
        raise ValueError(f"size {_shown(text)} is not a whole number of bytes")
    return int(value)


def parse_rate_hz(text: str | float) -> float:
    """'10 kHz' -> 10000.0 events per second. A bare number is taken as per second."""
    value = _scaled(text, "rate", RATE_UNITS, bare_allowed=True)
    if value <= 0:
        raise ValueError(f"rate {_shown(text)} must be positive")
    if value < MIN_RATE_HZ:
        raise ValueError(f"rate {_shown(text)} is below the limit of {MIN_RATE_HZ:.3g} Hz "
                         "(one event per 2**60 ns, about 36 years)")
    return value


def parse_bandwidth(text: str | float) -> float:
    """'2 GB/s' -> 2e9 bytes per second."""
    value = _scaled(text, "bandwidth", BANDWIDTH_UNITS, bare_allowed=False)
    if value <= 0:
        raise ValueError(f"bandwidth {_shown(text)} must be positive")
    return value


def format_ns(ns: float) -> str:
    """A duration for humans: 1500 -> '1.50 us'."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.2f} {unit}"
    return f"{ns:.0f} ns"
