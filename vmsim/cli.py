"""The `vmsim` command line.

Each sub-command imports its heavy dependencies inside its body so that `vmsim codec ...`
starts in a fraction of a second. Every user error (a `VmsimError`, a bad option) is
printed on one line and exits with status 2; no traceback reaches the user.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from vmsim.codec_cli import app as codec_app
from vmsim.errors import VmsimError

app = typer.Typer(
    help="Discrete-event simulator of virtio-msg topologies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(codec_app, name="codec")

ScenarioPath = Annotated[Path, typer.Argument(help="Scenario YAML file.")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a scenario value: dotted.key=value (value read as YAML); repeatable.")]


@app.command()
def run(
    scenario: ScenarioPath,
    out: Annotated[Path | None, typer.Option("--out", "-o", help=(
        "Result folder (default: results/<scenario name>); an existing one is replaced only when it is empty "
        "or a vmsim result."))] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Replace the scenario's seed.")] = None,
    set_: SetOption = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots.")] = False,
    no_trace: Annotated[bool, typer.Option("--no-trace", help="Skip the Perfetto trace.")] = False,
    trace_format: Annotated[str, typer.Option("--trace-format", help=(
        "perfetto (trace.perfetto-trace, Perfetto's protobuf) or json (trace.json, Chrome trace events)."))
    ] = "perfetto",
) -> None:
    """Simulate a scenario and write its result folder (tables, summary, plots, Perfetto trace).

    Exits with status 1, after writing the folder and printing the violations, when a safety check fails.
    """
    import atexit
    import gc

    from tqdm import tqdm

    from vmsim.api import run as run_scenario
    from vmsim.summary_report import format_summary

    atexit.register(gc.freeze)  # the process ends after the run: its exit need not walk every object of it

    # Shown only on a terminal and only once a run has taken a couple of seconds.
    with tqdm(total=100, unit="%", file=sys.stderr, disable=not sys.stderr.isatty(), delay=2.0, leave=False,
              bar_format="{l_bar}{bar}| {elapsed}<{remaining}") as bar:
        def progress(fraction: float) -> None:
            bar.update(max(0, min(100, round(fraction * 100)) - bar.n))

        try:
            result = run_scenario(scenario, seed=seed, out=out, set=set_ or [], plots=not no_plots,
                                  trace=not no_trace, trace_format=trace_format, progress=progress)
        except KeyboardInterrupt:
            bar.clear()  # Ctrl-C inside a bar update leaves tqdm believing it never drew: erase the bar here
            raise
    print(format_summary(result.summary, result.path))
    if result.summary["check"]["status"] != "ok":
        raise SystemExit(1)  # a safety check failed: the result folder is written, the violations printed


@app.command()
def validate(
    scenario: ScenarioPath,
    set_: SetOption = None,
) -> None:
    """Load a scenario and run every check, without simulating."""
    from vmsim.scenario import load

    model = load(scenario, set_ or [])
    print(f"ok: {model.name} ({len(model.drivers)} drivers, {len(model.buses)} buses, "
          f"{len(model.devices)} devices, {len(model.workloads)} workloads)")


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep YAML file (base scenario, parameters, replications).")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Sweep folder (default: results/<sweep name>).")] = None,
    executor: Annotated[str, typer.Option(
        "--executor", help="inline (this process), process (local pool) or dask.")] = "process",
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Pool size (default: one per core).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Address of a running Dask scheduler, e.g. tcp://host:8786 (implies dask).")] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the PNG plots.")] = False,
    fresh: Annotated[bool, typer.Option("--fresh", help="Redo every run instead of resuming.")] = False,
) -> None:
    """Run a parameter sweep with replications; re-running the same command resumes an interrupted one."""
    from vmsim.files import DEFAULT_RESULTS_ROOT
    from vmsim.sweeps import format_report, load_sweep
    from vmsim.sweeps import sweep as run_sweep

    plan = load_sweep(sweep_file)
    folder = out or DEFAULT_RESULTS_ROOT / plan.name
    try:
        points = run_sweep(plan, out=folder, executor=executor, workers=workers, scheduler=scheduler,
                           plots=not no_plots, fresh=fresh)
    except KeyboardInterrupt:
        print(f"vmsim: the finished runs are kept in {folder}: run the same command to resume", file=sys.stderr)
        raise
    print(format_report(plan, points, folder), end="")
    if (points["status"] != "ok").any():
        raise SystemExit(1)


@app.command()
def compare(
    compare_file: Annotated[Path, typer.Argument(help=(
        "Compare file: a sweep file whose compare: section names the configurations and the loads."))],
    out: Annotated[Path | None, typer.Option("--out", "-o", help=(
        "Result folder (default: results/<name>); an existing one is replaced only when empty or a vmsim "
        "result."))] = None,
    executor: Annotated[str, typer.Option(
        "--executor", help="inline (this process), process (local pool) or dask.")] = "process",
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Pool size (default: one per core).")] = None,
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Address of a running Dask scheduler, e.g. tcp://host:8786 (implies dask).")] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the figure.")] = False,
) -> None:
    """Run bus configurations side by side at several loads: latency, throughput, knee and per-request costs."""
    from vmsim.compare import compare as run_compare
    from vmsim.compare import load_comparison
    from vmsim.files import DEFAULT_RESULTS_ROOT

    plan = load_comparison(compare_file)
    folder = out or DEFAULT_RESULTS_ROOT / plan.name
    comparison = run_compare(plan, out=folder, executor=executor, workers=workers, scheduler=scheduler,
                             plots=not no_plots)
    print(comparison.markdown(), end="")
    print(f"\nresults    {folder}")
    if (comparison.points["status"] != "ok").any():
        raise SystemExit(1)


@app.command()
def calibrate(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Calibration scenarios, or folders of them (default: scenarios/published).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Result folder.")] = Path("results/published"),
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip the parity plot.")] = False,
) -> None:
    """Run the calibration suite: each published figure against vmsim, with the error; exit 1 on a miss."""
    from tqdm import tqdm

    from vmsim.calibration import DEFAULT_SUITE, format_table, write
    from vmsim.calibration import calibrate as run_suite
    from vmsim.result_folder import check_destination

    check_destination(out)
    with tqdm(file=sys.stderr, disable=not sys.stderr.isatty(), leave=False, unit=" points") as bar:
        def progress(point: str) -> None:
            bar.set_description(point)
            bar.update()

        table = run_suite(paths or [DEFAULT_SUITE], progress=progress)
    write(table, out, plots=not no_plots)
    print(format_table(table))
    print(f"results    {out}")
    if not table["within"].all():
        raise SystemExit(1)


@app.command()
def check(
    source: Annotated[Path, typer.Argument(help=(
        "A result folder, an events.parquet, or a capture: a frame log or Linux dynamic-debug "
        "TX MSG / RX MSG lines (docs/conformance.md)."))],
    layout: Annotated[str | None, typer.Option("--layout", help=(
        "Layout of every bus (default: inferred from an events table; v1 for dynamic debug)."))] = None,
    dump: Annotated[Path | None, typer.Option("--dump", help="Also write the frames read as a frame log.")] = None,
) -> None:
    """Check a frame log against the virtio-msg conformance rules; exit 1 when a rule is violated."""
    from vmsim.analysis.conformance.command import check_source, format_report

    report = check_source(source, layout, dump)
    print(format_report(report))
    if report["status"] != "ok":
        raise SystemExit(1)


def fail(message: str, problems: list[str] | None = None) -> None:
    """Print a user error, one line per problem, and exit 2."""
    for problem in problems or [message]:
        one_line = " ".join(str(problem).split())
        print(f"vmsim: error: {one_line}", file=sys.stderr)
    raise SystemExit(2)


INTERRUPTED = 130  # the shell's status for a process stopped by SIGINT


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the typer app, turning user errors into one line and exit status 2."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="vmsim", standalone_mode=False)
    except VmsimError as exc:
        fail(str(exc), getattr(exc, "problems", None))
    except typer.Abort:
        print("vmsim: interrupted", file=sys.stderr)
        raise SystemExit(INTERRUPTED) from None
    except typer.TyperException as exc:
        # typer >= 0.25 vendors click: its usage errors are TyperException, and click is not installed.
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if not message and hasattr(exc, "show"):  # bare `vmsim`: the help is the answer
            exc.show()
            raise SystemExit(2) from None
        fail(message)
    if result == INTERRUPTED:  # typer turns Ctrl-C into a quiet exit code of 130
        print("vmsim: interrupted", file=sys.stderr)
    if isinstance(result, int) and result:
        raise SystemExit(result)


if __name__ == "__main__":
    main()
