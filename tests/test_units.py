"""Unit strings are parsed at the edge into integers (ns, bytes) or floats (Hz, B/s)."""

import re

import pytest

from vmsim.units import (
    MAX_SIZE_BYTES,
    MAX_TIME_NS,
    MIN_RATE_HZ,
    format_ns,
    parse_bandwidth,
    parse_rate_hz,
    parse_size_bytes,
    parse_time_ns,
)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("1.5 us", 1500),
        ("1.5us", 1500),
        ("20 ns", 20),
        ("3 ms", 3_000_000),
        ("2 s", 2_000_000_000),
        ("1 µs", 1000),
        (250, 250),
        (0, 0),
        ("1e3 ns", 1000),
        (".5 us", 500),
    ],
)
def test_durations_become_integer_nanoseconds(text, ns):
    """Simulated time is integer ns so that 20 ns and 100 ms add up without float drift."""
    assert parse_time_ns(text) == ns
    assert isinstance(parse_time_ns(text), int)


def test_a_fraction_of_a_nanosecond_rounds_to_the_nearest():
    """Sub-ns figures (a 0.4 ns/B slope times one byte) round rather than truncate."""
    assert parse_time_ns("1.6 ns") == 2


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("4 KiB", 4096),
        ("64", 64),
        (64, 64),
        ("1 MB", 1_000_000),
        ("2 MiB", 2 * 1024**2),
        ("48 B", 48),
    ],
)
def test_sizes_become_integer_bytes(text, size):
    """Sizes accept decimal and binary prefixes; a bare number is bytes."""
    assert parse_size_bytes(text) == size


def test_rates_and_bandwidths():
    """Rates are per second (a bare number too); a bandwidth must say its unit."""
    assert parse_rate_hz("10 kHz") == 10_000.0
    assert parse_rate_hz(50) == 50.0
    assert parse_bandwidth("2 GB/s") == 2e9
    assert parse_bandwidth("1 MiB/s") == 1024.0**2


@pytest.mark.parametrize(
    ("parse", "text", "says"),
    [
        (parse_time_ns, "10 kHz", "unknown duration unit 'kHz'"),
        (parse_time_ns, "-1 us", "negative"),
        (parse_time_ns, "fast", "cannot read 'fast' as a duration"),
        (parse_time_ns, True, "expected a duration"),
        (parse_time_ns, "inf ns", "cannot read"),
        (parse_size_bytes, "1.5 B", "not a whole number of bytes"),
        (parse_size_bytes, "3 us", "unknown size unit 'us'"),
        (parse_rate_hz, "0 Hz", "must be positive"),
        (parse_rate_hz, "1 us", "unknown rate unit 'us'"),
        (parse_bandwidth, "100", "needs a unit"),
    ],
)
def test_bad_units_raise_value_error_naming_the_problem(parse, text, says):
    """Parsers raise ValueError with a reason; the scenario layer adds file, line and key."""
    with pytest.raises(ValueError, match=says):
        parse(text)


def test_format_ns_picks_a_readable_unit():
    """Durations shown to people use the largest unit that keeps the number >= 1."""
    assert format_ns(1500) == "1.50 us"
    assert format_ns(20) == "20 ns"
    assert format_ns(3_000_000) == "3.00 ms"
    assert format_ns(2e9) == "2.00 s"


@pytest.mark.parametrize(
    ("parse", "text", "says"),
    [
        (parse_time_ns, "1e300 s", "duration '1e300 s' is out of range"),
        (parse_time_ns, "1e10 s", "longer than the limit of 2**60 ns"),
        (parse_time_ns, 2**70, "longer than the limit of 2**60 ns"),
        (parse_time_ns, 10**400, "duration <a 1329-bit integer> is out of range"),
        (parse_size_bytes, 2**70, "larger than the limit of 2**40 bytes (1 TiB)"),
        (parse_size_bytes, "1025 GiB", "larger than the limit of 2**40 bytes"),
        (parse_rate_hz, "1e-30 Hz", "below the limit of 8.67e-10 Hz"),
        (parse_bandwidth, "1e300 GB/s", "out of range"),
    ],
)
def test_limits_apply_after_the_unit_is_applied(parse, text, says):
    """A number is finite and in range only once it is in ns or bytes: "1e300 s" is a float, its ns are
    not. Times stop at 2**60 ns and sizes at 2**40 bytes so that sums of them stay inside int64."""
    with pytest.raises(ValueError, match=re.escape(says)):
        parse(text)


def test_the_limits_themselves_are_accepted():
    assert parse_time_ns(f"{MAX_TIME_NS} ns") == MAX_TIME_NS
    assert parse_size_bytes(MAX_SIZE_BYTES) == MAX_SIZE_BYTES
    assert parse_rate_hz(MIN_RATE_HZ) == MIN_RATE_HZ


@pytest.mark.parametrize("text", ["５ us", "1.５ us", "٣ ms", "１０ B", "5\u2009us"])
def test_only_ascii_digits_make_a_number(text):
    """Python's float() reads full-width and Arabic-Indic digits; a scenario should not."""
    with pytest.raises(ValueError, match="cannot read"):
        parse_size_bytes(text) if text.endswith("B") else parse_time_ns(text)


@pytest.mark.parametrize("value", [[1], {"a": 1}, None])
def test_a_value_of_another_type_is_a_value_error(value):
    with pytest.raises(ValueError, match="expected a duration"):
        parse_time_ns(value)
