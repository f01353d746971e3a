"""Timeline exports of a run for the Perfetto UI: Perfetto's protobuf trace, or Chrome trace-event JSON."""

from vmsim.trace.perfetto import TRACE_FORMATS, build_trace, check_trace_format, write_trace

__all__ = ["TRACE_FORMATS", "build_trace", "check_trace_format", "write_trace"]
