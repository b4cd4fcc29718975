"""A run folder (``--out``): checked before any work, held by one writer, never replaced by accident.

* :func:`prepare_run_dir` makes sure the folder is a folder we can write into, before data loads;
* :class:`RunLock` holds an OS lock on ``<out>/.lock`` (``fcntl.flock``) for the run's life: the
  operating system releases it however the process ends (exit, exception, kill -9), so a stale
  lock never blocks a later run, while a second run into the same folder is refused, naming the
  process that holds it; a forked child (a worker of a batch-split step) closes its copy at once,
  so the lock dies with the run's own process, not with its last child;
* :func:`run_files` says whether the folder holds a run (its checkpoints and log); a new run is
  refused there unless it resumes it (``--resume``) or replaces it (``--overwrite``);
* :func:`remove_temporary_files` deletes the ``*.tmp`` files of writes cut short by a crash.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

from .log import LOG_NAME

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, one writer is then the user's care
    fcntl = None

LOCK_NAME = ".lock"
RUN_FILES = ("last.npz", "best.npz", LOG_NAME)


class RunDirError(RuntimeError):
    """The run folder cannot be used as asked; one-line message naming the fix."""


def prepare_run_dir(out: str | Path) -> Path:
    """Create ``out`` if needed and check it is a writable folder; RunDirError otherwise."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirError(f"--out {out} is a file, not a folder; choose a folder for the run's checkpoints and log")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(
            f"cannot create the run folder --out {out}: {exc.strerror or exc}; choose another --out"
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunDirError(
            f"cannot write into the run folder --out {out} (permission denied or a read-only disk); "
            "choose another --out"
        )
    return out


_held: weakref.WeakSet = weakref.WeakSet()  # the locks this process holds


def _drop_in_child() -> None:
    """In a forked child: close the inherited descriptors of the parent's locks (a flock lives while any
    copy of its descriptor is open, so a child would otherwise hold the run's lock after the run died)."""
    for lock in list(_held):
        if lock._fd is not None:
            os.close(lock._fd)
            lock._fd = None
    _held.clear()


os.register_at_fork(after_in_child=_drop_in_child)


class RunLock:
    """An exclusive lock on ``<out>/.lock`` while the run lives; the file records the holder's PID."""

    def __init__(self, out: str | Path):
        self.path = Path(out) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirError(
                f"cannot write into the run folder {self.path.parent}: {exc.strerror or exc}; choose another --out"
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunDirError(
                    f"another training run (PID {holder}) is writing into {self.path.parent}; "
                    "wait for it to end, stop it, or choose another --out"
                ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            os.close(fd)
            raise RunDirError(
                f"cannot write into the run folder {self.path.parent}: {exc.strerror or exc}; "
                "free disk space or choose another --out"
            ) from None
        self._fd = fd
        _held.add(self)
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (removing it would race a new run)
            self._fd = None
        _held.discard(self)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def run_files(out: str | Path) -> list[str]:
    """The files of a run that ``out`` holds (checkpoints, log); empty for a new folder."""
    return [name for name in RUN_FILES if (Path(out) / name).exists()]


def remove_temporary_files(out: str | Path) -> list[Path]:
    """Delete the ``*.tmp`` files that writes cut short left (call it holding the lock)."""
    removed = []
    for path in Path(out).glob("*.tmp"):
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def remove_run(out: str | Path) -> None:
    """Delete a run's files (``--overwrite``), so the new run starts from nothing."""
    for name in RUN_FILES:
        try:
            (Path(out) / name).unlink(missing_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot remove {Path(out) / name} for --overwrite: {exc.strerror or exc}") from None
