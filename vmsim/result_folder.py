"""Result folders: which ones vmsim may replace, and the atomic write of one.

A result folder carries the `.vmsim-result` marker listing the files vmsim wrote. It is filled in a hidden
temporary sibling and renamed into place (`vmsim.files.write_folder_atomically`), so a reader, or a crash,
sees the previous result or the complete new one. Only an empty folder, or one whose marker lists all it
holds, is ever replaced; the leftovers of a killed writer are recognised by the writer's process id and
removed by the next write.

A run written to a folder streams its logs to parquet while it runs, so memory stays flat however long the
run: `LogSpill` is the sink `vmsim.pipeline.simulate` gives the event and request logs
(`EventLog.stream_to`). Each buffer of `FLUSH_ROWS` rows becomes one row group of `events.parquet` or
`requests.parquet` in a spill folder (encoded and compressed by a short-lived thread while the simulation
goes on), and the buffer is emptied. What the summary needs later is read back
column by column (`summary_columns`), never kept for the whole run; the few lifecycle rows the safety checks
read (sharing steps) are kept as they pass, with their run-wide row numbers. The spill folder is a partial
folder of the result (`open_spill_folder`): a crash leaves the previous result in place and the spill to
the next write's clean-up; a finished run's files move into the result folder as it is written
(`RunResult.write`).

The outputs are written side by side where the system allows: `ForkedWorker` is a child process forked
before the simulation that imports what the plots need meanwhile, then draws them into the temporary folder
while this process writes the trace and the summary. A child that fails fails the write (so nothing is
swapped in), and a writer that fails or is interrupted kills its child first.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vmsim._version import __version__
from vmsim.analysis.checks import LIFECYCLE, check_events
from vmsim.errors import VmsimError
from vmsim.files import leftover_folder_pattern, write_folder_atomically
from vmsim.sim.log import EVENT_ROW, REQUEST_ROW, Column, EventLog, RequestLog

SUMMARY_FILE = "summary.json"
MARKER_FILE = ".vmsim-result"


def check_destination(folder: Path) -> None:
    """Refuse, before anything runs, a destination vmsim cannot write or must not replace.

    Replacing is delete-and-rename, so an existing folder is replaced only when it is vmsim's own: it
    carries the marker written with every result (`.vmsim-result`) and holds nothing the marker does not
    list. An empty folder is fine; anything else is refused, so `--out` at a home directory or a source
    tree erases nothing. A symlink is followed: its target is the destination. The folder holding the
    working directory cannot be replaced, and the place the result goes must be a writable folder.
    """
    target = _destination(folder)
    working = Path.cwd().resolve()
    if target == working or target in working.parents:
        raise VmsimError(f"{folder}: is the working directory or holds it; choose a folder for the result, "
                         "e.g. --out results/NAME")
    if target.exists():
        if not target.is_dir():
            raise VmsimError(f"{folder}: exists and is not a folder")
        _check_replaceable(folder, target)
    _check_writable(folder, target.parent)


def _destination(folder: Path) -> Path:
    """The real folder written: absolute, every symlink followed (a symlinked --out stays a symlink)."""
    return Path(os.path.realpath(folder))


def _check_replaceable(folder: Path, target: Path) -> None:
    try:
        entries = {entry.name for entry in target.iterdir()}
    except OSError as exc:
        raise VmsimError(f"{folder}: cannot be read: {exc.strerror or exc}") from None
    if not entries:
        return
    listed = _marked_files(target)
    if listed is None:
        if SUMMARY_FILE in entries:
            raise VmsimError(f"{folder}: has a {SUMMARY_FILE} but no {MARKER_FILE} marker (a result of an older "
                             "vmsim, or not a result at all) and is not replaced; remove it or choose another --out")
        raise VmsimError(f"{folder}: exists and is not a vmsim result folder (no {MARKER_FILE} marker); "
                         "choose another --out or remove it")
    foreign = sorted(entries - listed - {MARKER_FILE})
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise VmsimError(f"{folder}: is a vmsim result folder but also holds files vmsim did not write "
                         f"({shown}); move them away or choose another --out")


def _read_marker(folder: Path) -> dict | None:
    """A folder's marker when it is readable and lists file names, else None."""
    try:
        marker = json.loads((folder / MARKER_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    files = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        return None
    return marker


def _marked_files(folder: Path) -> set[str] | None:
    """The names a folder's marker lists as written by vmsim, or None when it has no readable marker."""
    marker = _read_marker(folder)
    return None if marker is None else set(marker["files"])


def _check_writable(folder: Path, parent: Path) -> None:
    """The nearest existing ancestor of the result's parent must be a folder this process can create in.

    Tried, not inferred from permission bits: an empty folder is made there and removed at once, so a
    read-only mount, an ACL or a pseudo file system is found before the run, not after it.
    """
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise VmsimError(f"{folder}: cannot be created, {existing} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".vmsim-probe-", dir=existing))
    except OSError as exc:
        raise VmsimError(f"{folder}: cannot be written, {existing}: {exc.strerror or exc}") from None


def write_atomically(folder: Path, fill) -> Path:
    """Call `fill(temporary_folder)`, mark the filled folder as a vmsim result, then swap it in at `folder`.

    The swap is `vmsim.files.write_folder_atomically`: if `fill` fails (or is interrupted) nothing changes.
    Leftovers of killed writers next to it are removed first. A symlinked `folder` is followed: the result
    replaces its target and the symlink stays. Returns `folder`.
    """
    folder = Path(folder)
    check_destination(folder)
    target = _destination(folder)

    def fill_and_mark(temporary: Path) -> None:
        remove_stale_folders(target)
        _write_marker(temporary, None)
        fill(temporary)
        _write_marker(temporary, sorted(entry.name for entry in temporary.iterdir() if entry.name != MARKER_FILE))

    write_folder_atomically(folder, target, fill_and_mark)
    return folder


def open_spill_folder(folder: Path) -> tuple[Path, list[Path]]:
    """A new partial folder next to the result `folder` for the files a run streams while it runs, and the
    parents made for it (innermost last).

    It is named and marked as `write_atomically`'s temporary folders are (`.NAME.partial-PID-*`, the marker
    naming its writer), so a crash leaves the previous result in place and this folder to the next write's
    clean-up (`remove_stale_folders`); `discard_spill_folder` removes it when the run ends otherwise.
    """
    target = _destination(Path(folder))
    created = [parent for parent in reversed(target.parents) if not parent.exists()]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        spill = target.parent / f".{target.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        spill.mkdir()
        _write_marker(spill, None)
    except OSError as exc:
        discard_spill_folder(target.parent / ".none", created)
        raise VmsimError(f"{folder}: cannot be written: {exc.strerror or exc}") from None
    return spill, created


def discard_spill_folder(spill: Path, created: list[Path]) -> None:
    """Remove a spill folder and what is left in it, then the parents made for it that stayed empty (best
    effort: a folder already gone is fine)."""
    shutil.rmtree(spill, ignore_errors=True)
    for parent in reversed(created):
        try:
            parent.rmdir()
        except OSError:
            break


def _write_marker(folder: Path, files: list[str] | None) -> None:
    """The marker that makes a folder replaceable by the next run: what vmsim wrote there.

    While a folder is being filled (`files` None) the marker names its writer instead (host and process
    id), so a later write can tell a killed writer's leftover from a folder still being written.
    """
    marker = {"vmsim_result": 1, "vmsim_version": __version__, "files": files or []}
    if files is None:
        marker["writer"] = {"host": socket.gethostname(), "pid": os.getpid()}
    (folder / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")


def remove_stale_folders(target: Path) -> list[Path]:
    """Remove the `.NAME.partial-PID-*` and `.NAME.old-PID-*` folders a killed writer left next to `target`.

    Only vmsim's own: the exact name, a real folder, a writer process (the PID in the name) no longer
    alive, and contents vmsim wrote: a partial folder empty or marked by a writer on this host, an old
    folder a complete marked result. A folder another process is still writing is left alone. Cleaning
    is best effort: what cannot be read or removed stays. Returns what was removed.
    """
    pattern = leftover_folder_pattern(target.name)
    removed = []
    try:
        candidates = [entry for entry in target.parent.iterdir() if pattern.fullmatch(entry.name)]
    except OSError:
        return removed
    for entry in candidates:
        pid = int(pattern.fullmatch(entry.name)["pid"])
        try:
            stale = not entry.is_symlink() and entry.is_dir() and not _alive(pid) and _holds_only_own_files(entry)
        except OSError:
            continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _holds_only_own_files(folder: Path) -> bool:
    entries = {entry.name for entry in folder.iterdir()}
    if not entries:
        return True
    marker = _read_marker(folder)
    if marker is None:
        return False
    if ".partial-" in folder.name:  # still being filled: its marker names its writer, not yet its files
        writer = marker.get("writer")
        return isinstance(writer, dict) and writer.get("host") == socket.gethostname()
    return entries <= set(marker["files"]) | {MARKER_FILE}


def _alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (one of another user counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        pass  # another user's process, or an id no process can have: left alone either way
    return True


# --- outputs written side by side ----------------------------------------------------------------


class ForkedWorker:
    """One piece of output work done in a forked child while this process writes the others: a result's plots
    drawn on the second core while its trace is written on the first.

    Forked ahead (`prepare` given: it runs in the child at once, importing what the work needs while this
    process simulates), the work is handed over by `submit` through a pipe (the task and its arguments
    pickled: a run's output without its streamed logs, a few MB). Forked at `submit` (no `prepare`), the child
    sees this process's memory as it is (copy-on-write, nothing pickled). Forked only where that is safe:
    on Linux, with no other Python thread running than a progress bar's monitor (a notebook's kernel has
    several); elsewhere `wait` does the work in this process.

    `wait` returns once the work is done; a child that failed fails it with the child's exception, as if the
    work had been done here (a `VmsimError` naming `what` if the child died without one). `cancel` kills a child still running: the writer failed or was interrupted
    (Ctrl-C), and the temporary folder the child writes into is about to go. A child whose parent died
    before handing it work reads the end of its pipe and leaves.
    """

    def __init__(self, what: str, prepare: Callable[[], None] | None = None):
        self.what = what
        self.pid = self.tasks = self.errors = None
        self.pending: tuple | None = None
        if prepare is not None and fork_is_safe():
            self._fork(lambda tasks: _received(prepare, tasks), with_tasks=True)

    def submit(self, task: Callable, *args) -> None:
        if self.tasks is not None:
            payload = pickle.dumps((task, args), protocol=pickle.HIGHEST_PROTOCOL)
            tasks, self.tasks = self.tasks, None
            try:
                with os.fdopen(tasks, "wb") as stream:
                    stream.write(payload)
            except BrokenPipeError:
                pass  # the child failed before reading it: `wait` says why
        elif self.pid is None and fork_is_safe():
            self._fork(lambda _: task(*args), with_tasks=False)
        else:
            self.pending = (task, args)

    def wait(self) -> None:
        if self.pending is not None:
            (task, args), self.pending = self.pending, None
            task(*args)
        if self.pid is None:
            return
        self._close_tasks()
        with os.fdopen(self.errors, "rb") as stream:
            failure = stream.read()
        self.errors = None
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if failure:
            raise pickle.loads(failure)
        if status != 0:
            code = os.waitstatus_to_exitcode(status)
            raise VmsimError(f"{self.what}: the process drawing them ended with status {code}")

    def cancel(self) -> None:
        self.pending = None
        self._close_tasks()
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.pid = None
        if self.errors is not None:
            os.close(self.errors)
            self.errors = None

    def _close_tasks(self) -> None:
        if self.tasks is not None:
            os.close(self.tasks)
            self.tasks = None

    def _fork(self, work: Callable[[int | None], None], *, with_tasks: bool) -> None:
        tasks = os.pipe() if with_tasks else None
        errors, error_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: do the work, report a failure on the pipe, never return to the caller
            os.close(errors)
            if tasks is not None:
                os.close(tasks[1])
            _child(lambda: work(tasks[0] if tasks is not None else None), error_end, self.what)
        os.close(error_end)
        if tasks is not None:
            os.close(tasks[0])
            self.tasks = tasks[1]
        self.pid, self.errors = pid, errors


def fork_is_safe() -> bool:
    """Whether this process may fork a worker: on Linux, with no other Python thread than tqdm's monitor of
    progress bars (which a child never touches)."""
    others = [thread for thread in threading.enumerate() if thread is not threading.current_thread()]
    return (sys.platform == "linux" and threading.current_thread() is threading.main_thread()
            and all(type(thread).__name__ == "TMonitor" for thread in others))


def _received(prepare: Callable[[], None], tasks: int) -> None:
    """In a child forked ahead: prepare, then do the task the parent hands over (none if it closed the pipe)."""
    prepare()
    with os.fdopen(tasks, "rb") as stream:
        payload = stream.read()
    if payload:
        task, args = pickle.loads(payload)
        task(*args)


def _child(work: Callable[[], None], error_end: int, what: str) -> None:
    """Run `work` in a forked child and leave with `os._exit`: no caller's clean-up (the temporary folder's
    removal), no exit handlers and no buffered output of the parent run twice. A failure goes to the parent
    as the exception itself (pickled), raised there as if the work had been done there: a user error still
    one line; one that cannot be pickled, as a `VmsimError` with its message on one line."""
    status = 0
    try:
        work()
    except BaseException as exc:  # noqa: BLE001 - any failure, Ctrl-C included, is the parent's to raise
        status = 1
        try:
            failure = pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception that cannot travel is sent as its text
            failure = pickle.dumps(VmsimError(" ".join(f"{what}: {type(exc).__name__}: {exc}".split())))
        os.write(error_end, failure)
    finally:
        os._exit(status)


# --- logs streamed while the run goes ---------------------------------------------------------


FLUSH_ROWS = 65_536
"""Rows a log buffers before it hands them over: one parquet row group (a few MB of memory at most)."""

EVENTS_FILE = "events.parquet"
REQUESTS_FILE = "requests.parquet"
SUMMARY_REQUEST_COLUMNS = ("submit_ns", "start_ns", "complete_ns", "latency_ns", "device")
"""The requests columns the summary reads back (device as a dictionary column: codes, not strings)."""
CHECKED_EVENT_COLUMNS = ("time_ns", "component", "event", "bus", "dev_num", "value")


def arrow_schema(row: tuple[Column, ...]) -> pa.Schema:
    """The parquet schema of a log row declared in `vmsim.sim.log`."""
    return pa.schema([(column.name, getattr(pa, column.arrow_type)()) for column in row])


EVENT_SCHEMA = arrow_schema(EVENT_ROW)
REQUEST_SCHEMA = arrow_schema(REQUEST_ROW)


class _RowGroupWriter:
    """Parquet files written a row group per table handed over, each by a short-lived thread of its own: the
    simulation goes on while the row group is encoded and compressed (pyarrow releases the GIL for that).
    One table is written at a time (the next waits for it), so memory stays bounded and the rows keep their
    order; no thread outlives its table, so none is left running when a writer is dropped half-way. A
    failure in a thread is raised by the next call."""

    def __init__(self, rows: int):
        self.rows = rows
        self.writers: dict[Path, pq.ParquetWriter] = {}
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def write(self, path: Path, table: pa.Table) -> None:
        self._join()
        self.thread = threading.Thread(target=self._write, args=(path, table), name="vmsim-parquet-writer",
                                       daemon=True)
        self.thread.start()

    def close(self, schemas: dict[Path, pa.Schema]) -> None:
        """Write what waits and close every file, those of `schemas` never written given no rows."""
        self._join()
        for path, schema in schemas.items():
            (self.writers.pop(path, None) or pq.ParquetWriter(path, schema)).close()

    def abandon(self) -> None:
        """Stop writing and close the files, whatever state they are in (the run failed or is done)."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        for writer in self.writers.values():
            try:
                writer.close()
            except OSError:
                pass
        self.writers.clear()

    def _write(self, path: Path, table: pa.Table) -> None:
        try:
            writer = self.writers.get(path)
            if writer is None:
                writer = self.writers[path] = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=self.rows)
        except BaseException as exc:  # noqa: BLE001 - raised in the simulating thread by its next call
            self.error = exc

    def _join(self) -> None:
        if self.thread is not None:
            self.thread.join()
            self.thread = None
        if self.error is not None:
            error, self.error = self.error, None
            raise error


class LogSpill:
    """The parquet files of one run's logs, written a row group at a time as the logs fill."""

    def __init__(self, folder: Path, rows: int = FLUSH_ROWS):
        self.folder = self.spill_folder = Path(folder)
        self.made_parents: list[Path] = []  # made for the spill folder: removed with it when left empty
        self.rows = rows
        self.events_path = self.folder / EVENTS_FILE
        self.requests_path = self.folder / REQUESTS_FILE
        self.seconds = 0.0  # wall time spent writing: the pipeline keeps it out of the simulation's time
        self._writer = _RowGroupWriter(rows)
        self._lifecycle: list[pa.Table] = []
        self._lifecycle_rows: list[np.ndarray] = []
        self._lifecycle_names = pa.array(LIFECYCLE)

    @classmethod
    def next_to(cls, result_folder: Path, rows: int = FLUSH_ROWS) -> LogSpill:
        """A spill in a new partial folder of `result_folder` (see the module docstring)."""
        folder, parents = open_spill_folder(result_folder)
        spill = cls(folder, rows)
        spill.made_parents = parents
        return spill

    def __getstate__(self) -> dict:
        """A spill handed to another process (a plotting child) only reads its files: the writer stays here."""
        return {**self.__dict__, "_writer": None}

    def discard(self) -> None:
        """Close the files and remove the spill folder: the run failed, or its files moved to the result."""
        if self._writer is not None:
            self._writer.abandon()
        discard_spill_folder(self.spill_folder, self.made_parents)

    def attach(self, events: EventLog, requests: RequestLog) -> None:
        events.stream_to(self._take_events, self.rows)
        requests.stream_to(self._take_requests, self.rows)

    def finish(self, events: EventLog, requests: RequestLog) -> None:
        """Hand over the rows still buffered and close both files (an empty log gives a file with no rows)."""
        events.flush()
        requests.flush()
        started = time.perf_counter()
        self._writer.close({self.events_path: EVENT_SCHEMA, self.requests_path: REQUEST_SCHEMA})
        self.seconds += time.perf_counter() - started

    def _write(self, path: Path, table: pa.Table) -> None:
        self._writer.write(path, table)

    def _take_events(self, log: EventLog, first_row: int) -> None:
        started = time.perf_counter()
        columns = log.columns(with_wire=False)
        offsets, present, data = log.wire_parts()  # the binary column straight from the frame bytes
        columns["wire"] = pa.Array.from_buffers(
            pa.binary(), len(present), [pa.py_buffer(np.packbits(present, bitorder="little")),
                                        pa.py_buffer(offsets), pa.py_buffer(data)],
            null_count=len(present) - int(present.sum()))
        table = pa.table(columns, schema=EVENT_SCHEMA)
        self._write(self.events_path, table)
        lifecycle = pc.is_in(table.column("event"), value_set=self._lifecycle_names)
        if pc.any(lifecycle).as_py():
            self._lifecycle.append(table.select(CHECKED_EVENT_COLUMNS).filter(lifecycle))
            self._lifecycle_rows.append(first_row + np.flatnonzero(lifecycle.to_numpy(zero_copy_only=False)))
        self.seconds += time.perf_counter() - started

    def _take_requests(self, log: RequestLog, first_row: int) -> None:
        started = time.perf_counter()
        self._write(self.requests_path, pa.table(log.columns(), schema=REQUEST_SCHEMA))
        self.seconds += time.perf_counter() - started

    def check(self) -> dict:
        """The safety checks (`vmsim.analysis.checks`) over the lifecycle rows kept as the log streamed, their
        violations naming events.parquet's row numbers as for a log kept whole."""
        if not self._lifecycle:
            return check_events({name: [] for name in CHECKED_EVENT_COLUMNS})
        table = pa.concat_tables(self._lifecycle)
        rows = np.concatenate(self._lifecycle_rows)
        verdict = check_events({name: table.column(name).to_numpy(zero_copy_only=False)
                                for name in table.column_names})
        for entry in verdict["checks"]:
            for violation in entry["violations"]:
                violation["rows"] = [int(rows[row]) for row in violation["rows"]]
        return verdict

    def summary_columns(self) -> pa.Table:
        """The requests columns the summary reads, read back from the file."""
        return pq.read_table(self.requests_path, columns=list(SUMMARY_REQUEST_COLUMNS),
                             read_dictionary=["device"])

    def events_table(self) -> pa.Table:
        return pq.read_table(self.events_path)

    def requests_table(self) -> pa.Table:
        return pq.read_table(self.requests_path)

    def moved_to(self, folder: Path) -> None:
        """The files now live in `folder` (the result folder they were moved into)."""
        self.folder = Path(folder)
        self.events_path = self.folder / EVENTS_FILE
        self.requests_path = self.folder / REQUESTS_FILE


def dictionary_codes(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """A string column without nulls as its distinct strings and each row's index into them (int32): one
    small list and four bytes a row, where the strings themselves would take a pointer and a compare each."""
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(column)
    column = column.unify_dictionaries()
    if column.num_chunks == 0:
        return [], np.empty(0, dtype=np.int32)
    names = column.chunk(0).dictionary.to_pylist()
    codes = [chunk.indices.to_numpy(zero_copy_only=False) for chunk in column.chunks]
    return names, np.concatenate(codes).astype(np.int32, copy=False)
