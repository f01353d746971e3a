"""The outputs of a result written side by side where the system allows: `ForkedWorker` is a child process
forked before the simulation that imports what the plots need meanwhile (and draws the topology), then
draws the others into the temporary folder while this process writes the trace and the summary. A child
that fails fails the write (so nothing is swapped in), and a writer that fails or is interrupted kills its
child first.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable

from vmsim.errors import VmsimError


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
