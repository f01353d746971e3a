"""Unit strings at the edges, integers inside.

Scenario files and the command line speak "1.5 us", "4 KiB", "10 kHz", "2 GB/s"; the simulator
speaks integer nanoseconds and integer bytes, so that mixing 20 ns and 100 ms never drifts.
Every parser raises `ValueError` with a short reason; the scenario layer turns it into a
`ScenarioError` naming the file, line and key.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
_QUANTITY = re.compile(rf"^\s*{_NUMBER}\s*([A-Za-z/µ]*)\s*$")

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
        return float(text), ""
    match = _QUANTITY.match(str(text))
    if not match:
        raise ValueError(f"cannot read {text!r} as a {kind}")
    return float(match.group(1)), match.group(2)


def _scaled(text, kind: str, units: dict, bare_allowed: bool) -> float:
    value, unit = _split(text, kind)
    if unit == "" and not bare_allowed:
        raise ValueError(f"{kind} {text!r} needs a unit (one of {', '.join(u for u in units if u)})")
    if unit == "":
        scale = 1.0
    elif unit in units:
        scale = units[unit]
    else:
        raise ValueError(f"unknown {kind} unit {unit!r} in {text!r} (use one of {', '.join(u for u in units if u)})")
    if not math.isfinite(value):
        raise ValueError(f"{kind} {text!r} is not finite")
    return value * scale


def parse_time_ns(text: str | float) -> int:
    """'1.5 us' -> 1500. A bare number is taken as nanoseconds."""
    value = _scaled(text, "duration", TIME_UNITS, bare_allowed=True)
    if value < 0:
        raise ValueError(f"duration {text!r} is negative")
    return round(value)


def parse_size_bytes(text: str | float) -> int:
    """'4 KiB' -> 4096. A bare number is taken as bytes; fractions of a byte are refused."""
    value = _scaled(text, "size", SIZE_UNITS, bare_allowed=True)
    if value < 0:
        raise ValueError(f"size {text!r} is negative")
    if value != int(value):
        raise ValueError(f"size {text!r} is not a whole number of bytes")
    return int(value)


def parse_rate_hz(text: str | float) -> float:
    """'10 kHz' -> 10000.0 events per second. A bare number is taken as per second."""
    value = _scaled(text, "rate", RATE_UNITS, bare_allowed=True)
    if value <= 0:
        raise ValueError(f"rate {text!r} must be positive")
    return value


def parse_bandwidth(text: str | float) -> float:
    """'2 GB/s' -> 2e9 bytes per second."""
    value = _scaled(text, "bandwidth", BANDWIDTH_UNITS, bare_allowed=False)
    if value <= 0:
        raise ValueError(f"bandwidth {text!r} must be positive")
    return value


def format_ns(ns: float) -> str:
    """A duration for humans: 1500 -> '1.50 us'."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(ns) >= scale:
            return f"{ns / scale:.2f} {unit}"
    return f"{ns:.0f} ns"
