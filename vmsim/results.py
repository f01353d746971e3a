"""What a run leaves: `RunResult`, which holds its summary (`vmsim.summary`) and tables (`vmsim.tables`) and
writes them as a result folder.

A result folder holds `events.parquet`, `requests.parquet`, `summary.json`, `config.resolved.yaml`, PNG
plots, the Perfetto trace (`trace.perfetto-trace`, or `trace.json`) and the `.vmsim-result` marker listing
them; `vmsim.result_folder` says which folders may be replaced and writes one atomically.

A run written to a folder streams its logs to parquet as it runs (`vmsim.spill.LogSpill`): its
tables, its summary's numbers and its trace are read back from those files, a column or a batch at a time,
so the logs' memory stays flat however long the run. A run kept in memory (`vmsim.run(..., write=False)`:
notebooks, sweeps, tests) keeps its logs whole and builds its tables from them.
"""

from __future__ import annotations

import json
import os
import shutil
from functools import cached_property
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vmsim.accounting import accounting_table
from vmsim.errors import VmsimError
from vmsim.forked import ForkedWorker
from vmsim.result_folder import SUMMARY_FILE, write_atomically
from vmsim.sim.output import SimOutput
from vmsim.spill import LogSpill
from vmsim.summary import SUMMARY_BATCH_ROWS, cpu_time_table, processors_per_request, summarize
from vmsim.tables import events_table, requests_table
from vmsim.units import format_ns

TRACE_EVENT_LIMIT = 200_000


class RunResult:
    """One finished run: summary, tables (built lazily, cached) and plot helpers for notebooks.

    `path` is the result folder, or None when the run was not written. `graph` may be given
    when the caller already built it (the checks need it), else it is built on first use. `spill` holds the
    parquet files of a run whose logs streamed (`vmsim.spill.LogSpill`): its tables are read from
    them, and after `write` from the result folder they moved into.
    """

    def __init__(self, scenario, output: SimOutput, summary: dict, *, graph=None, path: Path | None = None,
                 spill: LogSpill | None = None):
        self.scenario = scenario
        self.output = output
        self.summary = summary
        self.path = path
        self._graph = graph
        self._spill = spill

    @classmethod
    def of(cls, scenario, output: SimOutput, *, wall_seconds: float, graph=None,
           spill: LogSpill | None = None) -> RunResult:
        """A finished run's result. Kept in memory, its summary comes from the requests table the result keeps;
        streamed, from the few columns it needs, read back from the spill."""
        result = cls(scenario, output, {}, graph=graph, spill=spill)
        requests = None if spill is not None else result.requests_table
        result.summary = summarize(output, wall_seconds=wall_seconds, requests=requests, spill=spill)
        return result

    def __repr__(self) -> str:
        latency = self.summary["latency_ns"]
        p99 = "-" if latency["p99"] is None else format_ns(latency["p99"])
        return (f"<RunResult {self.summary['scenario']} seed={self.summary['seed']} "
                f"requests={self.summary['requests_completed']} p99={p99}>")

    @cached_property
    def events_table(self) -> pa.Table:
        return self._spill.events_table() if self._spill is not None else events_table(self.output)

    @cached_property
    def requests_table(self) -> pa.Table:
        return self._spill.requests_table() if self._spill is not None else requests_table(self.output)

    @cached_property
    def _request_aggregates(self):
        """What the latency and throughput plots draw (`vmsim.analysis.plots.RequestAggregates`), from the
        requests columns they need read a batch at a time: a streamed run's parquet file a row group at a time,
        a table kept in memory as one batch. The device only with more than one bus, where the latency plot
        draws a curve per bus."""
        from vmsim.analysis.plots import request_aggregates

        columns = ["submit_ns", "complete_ns", "latency_ns"]
        if len(self.output.events.buses.names) > 1:
            columns.append("device")
        if self._spill is not None and "requests_table" not in self.__dict__:
            # pre_buffer off: else the reader buffers every row group's columns at once (the whole file)
            source = pq.ParquetFile(self._spill.requests_path, read_dictionary=["device"], pre_buffer=False)
            rows = source.metadata.num_rows
            batches = source.iter_batches(batch_size=SUMMARY_BATCH_ROWS, columns=columns)
        else:
            rows = self.requests_table.num_rows
            batches = self.requests_table.select(columns).combine_chunks().to_batches()
        return request_aggregates(batches, rows=rows, sim_time_ns=self.output.sim_time_ns,
                                  warmup_ns=self.output.warmup_ns)

    @cached_property
    def events(self):
        """Every logged frame, doorbell and mark, one row each (pandas DataFrame)."""
        return self.events_table.to_pandas()

    @cached_property
    def requests(self):
        """Every completed I/O request, one row each (pandas DataFrame)."""
        return self.requests_table.to_pandas()

    @property
    def cpu_time(self):
        """Where the time went: work per processor and activity, over the run and per request (DataFrame)."""
        return cpu_time_table(self.summary)

    @property
    def accounting(self):
        """What the requests cost: bytes, lines, doorbells, interrupts, polls, frames and CPU per bus, device
        and memory region, over the run and per request (DataFrame, `vmsim.accounting.accounting_table`)."""
        return accounting_table(self.summary)

    @property
    def graph(self):
        """The topology graph (networkx DiGraph) the run was built from."""
        if self._graph is None:
            from vmsim.topology import build_graph

            self._graph = build_graph(self.scenario)
        return self._graph

    def init_sequence(self, device: str | None = None):
        """The frames a device's bring-up put on the bus (tx rows, in order), up to DRIVER_OK.

        `device` is the scenario's device name (default: the first device). Rows after the
        device's `init_done_ns` are left out, so the listing is the init conversation only.
        """
        spec = self.scenario.devices[0] if device is None else next(
            (item for item in self.scenario.devices if item.name == device), None)
        if spec is None:
            known = ", ".join(item.name for item in self.scenario.devices)
            raise VmsimError(f"no device {device!r} in scenario {self.scenario.name} (devices: {known})")
        events = self.events
        rows = events[(events["event"] == "tx") & (events["bus"] == spec.bus)
                      & (events["dev_num"] == spec.dev_num) & events["msg_name"].notna()]
        keys = (f"{spec.bus}.{spec.name}", f"{spec.bus}.{spec.dev_num}", spec.name)
        done = next((self.output.init_done_ns[key] for key in keys if key in self.output.init_done_ns), None)
        if done is not None:
            rows = rows[rows["time_ns"] <= done]
        columns = ["time_ns", "component", "msg_name", "type", "msg_id", "token", "msg_size", "wire"]
        return rows[columns].reset_index(drop=True)

    # --- plots ------------------------------------------------------------------------------

    def plot_latency_cdf(self, ax=None):
        from vmsim.analysis import plots

        return plots.latency_cdf(self._request_aggregates, ax=ax, warmup_ns=self.output.warmup_ns,
                                 sim_time_ns=self.output.sim_time_ns)

    def plot_throughput(self, ax=None):
        from vmsim.analysis import plots

        return plots.throughput(self._request_aggregates, ax=ax, sim_time_ns=self.output.sim_time_ns,
                                warmup_ns=self.output.warmup_ns)

    def plot_occupancy(self, ax=None):
        from vmsim.analysis import plots

        return plots.occupancy(self.output.series, ax=ax, sim_time_ns=self.output.sim_time_ns)

    def plot_topology(self, ax=None):
        from vmsim.analysis import plots

        return plots.topology(self.graph, ax=ax)

    def plot_cpu_time(self, ax=None):
        from vmsim.analysis import plots

        return plots.cpu_time(self.cpu_time, ax=ax)

    # --- writing ------------------------------------------------------------------------------

    def write(self, folder: Path, *, plots: bool = True, trace: bool = True,
              trace_limit: int = TRACE_EVENT_LIMIT, trace_format: str = "perfetto",
              resolved_config: dict | None = None, plotter: ForkedWorker | None = None) -> Path:
        """Write the result folder atomically; returns its path (also kept in `self.path`). A streamed run's
        parquet files are moved in from its spill, whose folder goes once they have.

        The plots are drawn by a child process (`vmsim.forked.ForkedWorker`) while this one writes the
        trace and the summary: `plotter`, already drawing them into the spill's folder (`draw_plots_ahead`),
        whose files are moved in once it is done, else one forked here."""
        spill = self._spill

        def fill(temporary: Path) -> None:
            if spill is None:
                pq.write_table(self.events_table, temporary / "events.parquet")
                pq.write_table(self.requests_table, temporary / "requests.parquet")
            if resolved_config is not None:
                import yaml

                with open(temporary / "config.resolved.yaml", "w") as stream:
                    yaml.safe_dump(resolved_config, stream, sort_keys=False)
            drawing = (plotter or ForkedWorker("plots")) if plots else None
            try:
                if drawing is not None and plotter is None:
                    drawing.submit(save_plots, self, temporary)
                summary = dict(self.summary)
                if trace:
                    from vmsim.trace import write_trace

                    tables = (spill.events_path, spill.requests_path) if spill is not None else (
                        self.events_table, self.requests_table)
                    summary["trace"] = write_trace(self.output, temporary, limit=trace_limit,
                                                   trace_format=trace_format, events=tables[0], requests=tables[1])
                with open(temporary / SUMMARY_FILE, "w") as stream:
                    json.dump(summary, stream, indent=2)
                    stream.write("\n")
                if drawing is not None:
                    drawing.wait()
                if drawing is not None and plotter is not None:
                    from vmsim.analysis.plots import PLOT_FILES

                    for name in PLOT_FILES:
                        os.replace(spill.spill_folder / name, temporary / name)
            finally:
                if drawing is not None:
                    drawing.cancel()
            if spill is not None:  # moved last: the plots' process reads requests.parquet where it was
                moved = spill.folder == spill.spill_folder  # else written before: copied from that folder
                for path in (spill.events_path, spill.requests_path):
                    (os.replace if moved else shutil.copyfile)(path, temporary / path.name)
                spill.moved_to(temporary)
            self.summary = summary

        try:
            self.path = write_atomically(Path(folder), fill)
        finally:
            if spill is not None:
                spill.discard()
        if spill is not None:
            spill.moved_to(self.path)
        return self.path


def draw_plots_ahead(plotter: ForkedWorker, scenario, output: SimOutput, *, graph, spill: LogSpill) -> None:
    """Hand `plotter` a streamed run's plots as soon as it has simulated, drawn into its spill's folder while
    this process summarises the run and writes the trace (`RunResult.write(..., plotter=plotter)` moves them
    in); the topology plot, drawn there while the run simulated (`prepare_plots`), is not drawn again. Of the
    summary the plots draw only the processors' work (the CPU-time plot), given here as the summary has it."""
    summary = {"processors": processors_per_request(output)}
    plotter.submit(save_plots, RunResult(scenario, output, summary, graph=graph, spill=spill), spill.spill_folder,
                   ("topology.png",))


def save_plots(result: RunResult, folder: Path, ahead: tuple[str, ...] = ()) -> None:
    """Draw a result's standard plots into `folder` (`vmsim.analysis.plots.save_plots`): the task a plotting
    child process is handed. Those of `ahead` found in `folder` were drawn there already (`prepare_plots`:
    not when the worker could not fork ahead)."""
    from vmsim.analysis.plots import save_plots as draw

    draw(result, folder, drawn=[name for name in ahead if (Path(folder) / name).exists()])


def prepare_plots(graph, folder: Path) -> None:
    """What a plotting child process does while the run simulates: import what drawing the plots needs
    (matplotlib, pyplot too for the topology plot, pandas), and draw the one plot that needs nothing of the
    run, its topology, into `folder`."""
    import matplotlib.figure
    import matplotlib.pyplot  # noqa: F401
    import pandas  # noqa: F401

    from vmsim.analysis.plots import save_topology

    save_topology(graph, folder)
