"""Result folders: which ones vmsim may replace, and the atomic write of one.

A result folder carries the `.vmsim-result` marker listing the files vmsim wrote. It is filled in a hidden
temporary sibling and renamed into place (`vmsim.files.write_folder_atomically`), so a reader, or a crash,
sees the previous result or the complete new one. Only an empty folder, or one whose marker lists all it
holds, is ever replaced; the leftovers of a killed writer are recognised by the writer's process id and
removed by the next write.

A run written to a folder streams its logs into a spill folder (`open_spill_folder`), a partial folder of
the result named and marked as the temporary folders are; what streams into it is `vmsim.spill.LogSpill`.
The outputs are written side by side by `vmsim.forked.ForkedWorker`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

from vmsim._version import __version__
from vmsim.errors import VmsimError
from vmsim.files import leftover_folder_pattern, write_folder_atomically

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
