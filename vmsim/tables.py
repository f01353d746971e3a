"""A run's logs as Arrow tables, with the schema `vmsim.sim.log` declares for each row, and the Markdown table
results/README.md shows of each row's columns."""

from __future__ import annotations

import pyarrow as pa

from vmsim.sim.log import Column
from vmsim.sim.output import SimOutput
from vmsim.spill import EVENT_SCHEMA, REQUEST_SCHEMA


def column_table(row: tuple[Column, ...]) -> str:
    """A log row's columns as the Markdown table results/README.md shows (a test keeps the two equal)."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{column.name}` | {column.arrow_type} | {column.meaning} |" for column in row]
    return "\n".join(lines)


def events_table(output: SimOutput) -> pa.Table:
    """The event log as an Arrow table (frame headers decoded, `wire` as a binary column)."""
    return pa.table(output.events.columns(), schema=EVENT_SCHEMA)


def requests_table(output: SimOutput) -> pa.Table:
    return pa.table(output.requests.columns(), schema=REQUEST_SCHEMA)
