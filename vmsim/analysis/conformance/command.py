"""`vmsim check SOURCE`: the monitor over a result folder, an events.parquet or a capture, and its table."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vmsim.errors import VmsimError

from .capture import HEADER_LINE, CaptureError, format_frame_log, read_capture
from .frames import chunk_from_arrow
from .monitor import ConformanceMonitor
from .rules import RULE_IDS

EVENTS_FILE = "events.parquet"
EVENT_COLUMNS = ("time_ns", "component", "event", "bus", "msg_name", "wire")


def check_source(source: Path, layout: str | None = None, dump: Path | None = None) -> dict:
    """The monitor's report over `source`: a result folder (its events.parquet), an events.parquet file, or
    a text capture (frame log or dynamic debug, `capture`); `dump` writes the frames read as a frame log.
    `layout` names the layout of every bus (default: inferred from a table, v1 for dynamic debug)."""
    source = Path(source)
    path = source / EVENTS_FILE if source.is_dir() else source
    if not path.exists():
        raise VmsimError(f"{source}: no such file or folder" + (f" (no {EVENTS_FILE} in it)" if source.is_dir() else ""))
    monitor = ConformanceMonitor()
    dumped = [HEADER_LINE + "\n"]
    if path.suffix == ".parquet":
        report_rows = "row"
        chunks = parquet_chunks(path, None, layout)
    else:
        report_rows = "line"
        chunks = [read_capture(path, layout or "v1")]
    for chunk in chunks:
        monitor.feed(chunk)
        if dump is not None:
            dumped.append(format_frame_log(chunk, header=False))
    if dump is not None:
        try:
            Path(dump).write_text("".join(dumped), encoding="utf-8")
        except OSError as exc:
            raise VmsimError(f"{dump}: cannot write: {exc.strerror or exc}") from None
    report = monitor.report()
    report["rows_are"] = report_rows
    return report


def parquet_chunks(path: Path, layouts: dict[str, str] | None = None, layout: str | None = None):
    """The frames of an events.parquet, a row group at a time; a bus's layout from `layouts`, else `layout`,
    else inferred."""
    try:
        parquet = pq.ParquetFile(path)
        missing = [name for name in EVENT_COLUMNS if name not in parquet.schema_arrow.names]
    except (OSError, pa.ArrowException) as exc:
        raise VmsimError(f"{path}: not a readable parquet file: {exc}") from None
    if missing:
        raise VmsimError(f"{path}: not an events table: no column {', '.join(missing)}")
    known: dict[str, str] = {}
    first = 0
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group, columns=list(EVENT_COLUMNS))
        given = dict(layouts or {})
        if layout:
            given.update({name: layout for name in pc.unique(table.column("bus")).to_pylist() if name})
        yield chunk_from_arrow(table, first, given, known)
        first += table.num_rows


def format_report(report: dict, shown: int = 10) -> str:
    """The per-rule table, the verdict and the first violations."""
    lines = [f"{'rule':<28} {'checked':>9} {'violations':>10} {'not checkable':>13}  section"]
    for rule in RULE_IDS:
        entry = report["rules"][rule]
        lines.append(f"{rule:<28} {entry['checked']:>9} {entry['violations']:>10} {entry['not_checkable']:>13}  "
                     f"{entry['section']}")
    total = report["violations_total"]
    verdict = "ok" if report["status"] == "ok" else f"FAILED, {total} violation(s)"
    lines.append(f"conformance: {verdict} over {report['frames']} frames")
    what = report.get("rows_are", "row")
    for violation in report["violations"][:shown]:
        lines.append(f"  {what} {violation['row']} ({violation['time_ns']} ns) bus {violation['bus']} "
                     f"dev {violation['dev_num']}: {violation['rule']}: {violation['message']}")
    if total > shown:
        lines.append(f"  ... {total - min(shown, len(report['violations']))} more")
    return "\n".join(lines)


__all__ = ["CaptureError", "check_source", "format_report"]
