"""One owner per run directory: an advisory ``flock`` on ``DIR/.lock``.

The kernel drops the lock when its owner exits, however it exits (``kill -9`` included), so a
crashed run never leaves a directory locked. The lock file stays behind; it holds the owner's
pid for the error message. On systems without ``fcntl`` (Windows) locking is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Self

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"


class DirectoryBusy(ValueError):
    """Another process owns the directory."""


class DirLock:
    """Exclusive, non-blocking lock on ``directory`` (which must exist); a context manager."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._fd: int | None = None

    def acquire(self) -> DirLock:
        if fcntl is None or self._fd is not None:
            return self
        path = self.directory / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DirectoryBusy(
                f"{self.directory} is in use by another stochgrad process (pid {owner}); "
                "wait for it to finish or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
