"""One DataMiner System per state directory: a lock file held while the system is open.

Two systems on one directory would start the same elements twice, give out the same ids and
overwrite each other's files. The lock is an OS file lock (`flock`, or `msvcrt.locking` on
Windows), so it is let go when its process dies, however it dies: a killed system never locks
its directory for good.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..protocol.errors import StateFileError

LOCK_FILE = "dms.lock"

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


class StateDirectoryLock:
    """Held from `acquire` until `release` (or the end of the process)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise `StateFileError` naming the directory and the holder."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise StateFileError(f"cannot lock state directory {self.path.parent}: {error.strerror or error}") from error
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as error:
            holder = _read_holder(fd)
            os.close(fd)
            raise StateFileError(
                f"state directory {self.path.parent} is in use by another DataMiner System"
                f"{f' (process {holder})' if holder else ''}; close it first, or use another directory"
            ) from error
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing lets go of the lock

    @property
    def held(self) -> bool:
        return self._fd is not None


def refuse_if_in_use(state_dir: Path) -> None:
    """Raise `StateFileError`, as opening a DataMinerSystem there would, when one holds
    `state_dir` open now (in this process or another): for work to refuse before it starts."""
    probe = StateDirectoryLock(state_dir)
    if probe.path.exists():
        probe.acquire()
        probe.release()


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        return os.pread(fd, 32, 0).decode().strip()
    return ""
