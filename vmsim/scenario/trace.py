"""Arrival traces: a CSV of request times (and sizes) replayed by a `kind: trace` workload.

Columns: `time` (unit strings such as "1.5 us", or bare ns, relative to the workload's start,
non-decreasing) and optional `size` (unit strings or bare bytes). The loader reads every trace
once to validate it, naming the row of each bad cell; the simulator calls `read_trace` again and
gets the cached arrays, so the file is parsed once per process. A trace is a regular file of at
most `MAX_TRACE_BYTES` (64 MiB, some three million rows).
"""

from __future__ import annotations

import csv
import difflib
import io
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from vmsim.errors import ScenarioError
from vmsim.scenario.locations import read_bounded
from vmsim.units import parse_size_bytes, parse_time_ns

COLUMNS = ("time", "size")
MAX_PROBLEMS = 20
MAX_TRACE_BYTES = 64 * 1024 * 1024


class Trace(NamedTuple):
    times_ns: tuple[int, ...]
    sizes: tuple[int, ...] | None  # None when the file has no `size` column


def read_trace(path: str | Path) -> Trace:
    """Parse and validate a trace CSV; raise `ScenarioError` with one line per bad row."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise ScenarioError(f"{path}: trace file not found") from None
    return _read(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=32)
def _read(path: str, mtime_ns: int, size: int) -> Trace:
    """Cached on the file's identity and modification time, so an edited trace is read afresh."""
    problems: list[str] = []
    times: list[int] = []
    sizes: list[int] = []
    try:
        text = read_bounded(Path(path), path, MAX_TRACE_BYTES).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{path}: cannot read trace: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = [cell.strip() for cell in next(reader, [])]
        _check_header(path, header)
        has_size = "size" in header
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            line = reader.line_num
            if len(row) != len(header):
                problems.append(f"{path}:{line}: expected {len(header)} columns, got {len(row)}")
                continue
            cells = dict(zip(header, (cell.strip() for cell in row)))
            at = _cell(path, line, "time", cells["time"], parse_time_ns, problems)
            if at is not None and times and at < times[-1]:
                problems.append(
                    f"{path}:{line}: time: {cells['time']} is before the previous row's time "
                    "(times must not decrease)"
                )
            if at is not None:
                times.append(at)
            if has_size:
                sizes.append(_cell(path, line, "size", cells["size"], parse_size_bytes, problems) or 0)
    except csv.Error as exc:
        raise ScenarioError(f"{path}: cannot read trace: {exc}") from None
    if not problems and not times:
        problems.append(f"{path}: trace has no rows")
    if problems:
        more = len(problems) - MAX_PROBLEMS
        raise ScenarioError(*problems[:MAX_PROBLEMS], *([f"{path}: ... and {more} more"] if more > 0 else []))
    return Trace(tuple(times), tuple(sizes) if sizes else None)


def _check_header(path: str, header: list[str]) -> None:
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], COLUMNS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ScenarioError(
            f"{path}:1: unknown column {unknown[0]!r}{hint}; columns are time and optional size"
        )
    if "time" not in header:
        raise ScenarioError(f"{path}:1: the header row needs a `time` column (and optionally `size`)")


def _cell(path: str, line: int, column: str, text: str, parse, problems: list[str]) -> int | None:
    try:
        return parse(text)
    except ValueError as exc:
        problems.append(f"{path}:{line}: {column}: {exc}")
        return None
