"""Output paths: checked writable before any work starts, guarded by a lock, cleaned of the
temporary files that killed writes left behind.

    check_writable_dir(out, "--out")          # before an hour of prediction, not after
    check_writable_file(json_path, "--json")  # before scoring, not after
    with OutputLock(run_dir / ".vcseg-train.lock", "vcseg train"):  # a second run: one line, exit 1
        remove_orphan_temporaries(run_dir)
        ...

A check that fails raises `VcsegError` with one line naming the path and the fix. Writability is
probed by creating (and removing) a file, not by `os.access`, which says yes to root on a
read-only mount and no to nothing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import tempfile
import time
from pathlib import Path

from vcseg.errors import VcsegError

#: Names `vcseg.io.atomic.atomic_path` gives its temporary files: `.<target>.<random>.<pid>.tmp`.
_TEMPORARY = re.compile(r"^\..+\.(\d+)\.tmp$")


def _nearest_existing(path: Path) -> Path:
    """`path` itself or its closest ancestor that exists."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe(folder: Path, path: Path, option: str) -> None:
    """Create and remove a file in `folder`; VcsegError naming `path` when that fails."""
    try:
        fd, name = tempfile.mkstemp(prefix=".vcseg-write-probe.", dir=folder)
    except OSError as error:
        reason = error.strerror or str(error)
        raise VcsegError(f"{path}: cannot write there ({reason.lower()} in {folder}); "
                         f"choose another {option}") from None
    os.close(fd)
    os.unlink(name)


def check_writable_dir(path: str | os.PathLike[str], option: str) -> None:
    """`path` is a folder that exists and takes files, or one that can be created."""
    path = Path(path)
    existing = _nearest_existing(path)
    if not existing.is_dir():
        where = "exists and is not a folder" if existing == Path(os.path.abspath(path)) \
            else f"lies under {existing}, which is a file"
        raise VcsegError(f"{path}: {where}; choose another {option}")
    _probe(existing, path, option)


def check_writable_file(path: str | os.PathLike[str], option: str) -> None:
    """`path` can be written (replaced, if it exists) as a file."""
    path = Path(path)
    if path.is_dir():
        raise VcsegError(f"{path}: is a folder; give a file name for {option}")
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise VcsegError(f"{path}: lies under {existing}, which is a file; choose another {option}")
    _probe(existing, path, option)


def pid_alive(pid: int) -> bool:
    """True while process `pid` exists on this machine."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_orphan_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of `atomic_path` writes whose process is gone; return them.

    Only files named the way `atomic_path` names them, with the pid of a process that no longer
    runs, are touched: a live writer's temporary file and every other file are left alone.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match is None or not entry.is_file() or entry.is_symlink():
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not pid_alive(pid):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


class OutputBusy(VcsegError):
    """Another process holds the lock of an output."""


class OutputLock:
    """An advisory lock (`lockf`) on a file beside an output, held for one command's run.

    The kernel drops the lock when the process dies, so a killed run never leaves a stale lock
    behind; the file itself stays (it records who held it last). `shared=True` lets several
    holders in at once (the shards of one torchrun prediction) while keeping exclusive holders out.
    Within one process the lock is re-entrant: the CLI takes it before importing the heavy stack
    (so a second run is turned away at once) and the library function it calls takes it again.
    """

    _held: dict[Path, list[int]] = {}  # path -> [fd, depth] for the locks this process holds

    def __init__(self, path: str | os.PathLike[str], command: str, *, shared: bool = False,
                 guards: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(os.path.abspath(path))
        self.command = command
        self.shared = shared
        self.guards = Path(guards) if guards is not None else self.path.parent  # named in messages
        self._entered = False

    def acquire(self) -> OutputLock:
        if self._entered:
            return self
        held = OutputLock._held.get(self.path)
        if held is not None:
            held[1] += 1
            self._entered = True
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # POSIX record locks, not flock: a forked child (a DataLoader worker) does not inherit
            # them, so a killed run's lock goes with its process, not with its slowest child.
            fcntl.lockf(fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise OutputBusy(f"{self.guards}: in use by {self.holder()}; wait for it to finish, "
                             "or choose another output") from None
        if not self.shared:  # a shared holder must not overwrite the others' record
            os.ftruncate(fd, 0)
            os.write(fd, f"{self.command} (pid {os.getpid()} on {socket.gethostname()}, since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode())
        OutputLock._held[self.path] = [fd, 1]
        self._entered = True
        return self

    def holder(self) -> str:
        """Who holds (or last held) the lock, as recorded in the file."""
        try:
            text = self.path.read_text().strip()
        except OSError:
            text = ""
        recorded = re.search(r"\(pid (\d+) on ([^,]+),", text)
        if recorded is None or (recorded.group(2) == socket.gethostname() and not pid_alive(int(recorded.group(1)))):
            return "another process"  # shared holders record nothing; the text may be a past run's
        return text

    def release(self) -> None:
        if not self._entered:
            return
        self._entered = False
        held = OutputLock._held[self.path]
        held[1] -= 1
        if held[1] == 0:
            del OutputLock._held[self.path]
            fcntl.lockf(held[0], fcntl.LOCK_UN)
            os.close(held[0])

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
