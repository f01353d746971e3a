"""Atomic writes: a reader, or a crash, sees the previous file or folder or the complete new one, never half.

Both ways write into a hidden temporary sibling (so the final rename stays on one file system) and rename
it into place: `write_file_atomically` for one file (a sweep's records and tables), `write_folder_atomically`
for a whole folder (a run's result). A temporary folder's name carries the writing process's id, so a later
writer can tell the leftover of a killed one (`leftover_folder_pattern`) from a folder still being written.
Standard library only: the bottom of the stack, next to `vmsim.errors`.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from vmsim.errors import VmsimError

DEFAULT_RESULTS_ROOT = Path("results")
"""Where runs and sweeps are written unless told otherwise (relative to the working directory)."""

_LEFTOVER_FOLDER = r"\.{name}\.(?:partial|old)-(?P<pid>[0-9]+)-[0-9a-f]{{8}}"
TEMPORARY_FILE_GLOB = ".*.tmp-*"
"""Matches every temporary file `write_file_atomically` may leave behind when killed mid-write."""


def write_file_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """`write(temporary)` then rename over `path`.

    The data is flushed to disk before the rename, so a machine restart cannot leave a named but empty file.
    """
    temporary = path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        write(temporary)
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_folder_atomically(folder: Path, target: Path, fill: Callable[[Path], None]) -> None:
    """`fill(temporary_folder)`, then swap it in at `target` (the real path of `folder`, named in messages).

    An existing folder is renamed away, the new one renamed in, and only then the old one deleted; if `fill`
    fails (or is interrupted) the temporary folder and any parent made for it are removed and nothing else
    changes.
    """
    created = [parent for parent in reversed(target.parents) if not parent.exists()]
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary = target.parent / f".{target.name}.partial-{tag}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary.mkdir()
    except OSError as exc:
        for parent in reversed(created):
            _remove_if_empty(parent)
        raise VmsimError(f"{folder}: cannot be written: {exc.strerror or exc}") from None
    try:
        fill(temporary)
        _swap_in(temporary, target, target.parent / f".{target.name}.old-{tag}")
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        for parent in reversed(created):
            _remove_if_empty(parent)
        raise


def leftover_folder_pattern(name: str) -> re.Pattern:
    """The names `write_folder_atomically` gives its temporary folders next to `name`; group `pid` is the
    writer's process id."""
    return re.compile(_LEFTOVER_FOLDER.format(name=re.escape(name)))


def _swap_in(new: Path, folder: Path, old: Path) -> None:
    if not folder.exists():
        os.replace(new, folder)
        return
    os.replace(folder, old)
    try:
        os.replace(new, folder)
    except BaseException:
        os.replace(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _remove_if_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
