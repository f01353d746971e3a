"""Timeline exports of a run: Chrome trace-event JSON for the Perfetto UI."""

from vmsim.trace.perfetto import build_trace, write_trace

__all__ = ["build_trace", "write_trace"]
