"""Dataset folders that may also hold a user's files: what `vcseg synth` and `vcseg compose` share.

A run writes everything into a hidden staging folder beside OUT (`.<OUT>.<random>.<pid>.partial`),
so the long part (rendering) never touches OUT. At the end only the files this run wrote are moved
in, and of a previous run's output only the files its meta lists are removed (with the folders
that removal leaves empty): a file the user put in OUT, even inside OUT/JPEGImages/<video>/, stays.

    previous = ...  # relative paths the previous run's meta lists
    check_no_foreign_files(out, planned, previous, "OUT")   # before any work
    staging = make_staging(out)
    ...  # write into staging
    install(staging, out, planned, previous)

The moves at the end are renames within one file system; only a run killed during them (a few
milliseconds per thousand files) leaves OUT part old, part new.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from vcseg.errors import VcsegError
from vcseg.io.outputs import check_writable_dir, pid_alive

_PARTIAL = ".partial"


def _staging_pattern(out: Path) -> re.Pattern[str]:
    # mkdtemp's random part has no dots, so the pid is the last dotted field before the suffix
    return re.compile(rf"^\.{re.escape(out.name)}\.[^.]+\.(\d+){re.escape(_PARTIAL)}$")


def make_staging(out: Path) -> Path:
    """A new hidden folder beside `out` (same file system, so moving files in is a rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=f".{os.getpid()}{_PARTIAL}",
                                    dir=out.parent))
    os.chmod(staging, 0o755)  # mkdtemp makes 0700; a staging folder may become OUT itself
    return staging


def remove_orphan_staging(out: Path) -> list[Path]:
    """Delete the staging folders of runs into `out` whose process is gone; return them."""
    removed: list[Path] = []
    if not out.parent.is_dir():
        return removed
    pattern = _staging_pattern(out)
    for entry in out.parent.iterdir():
        match = pattern.match(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def checked_relative(rel: str, source: Path) -> str:
    """`rel` if it names a path inside the output; VcsegError (naming `source`) otherwise."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise VcsegError(f"{source}: lists {rel!r}, which is not inside the output; "
                         "remove the output by hand or choose another folder")
    return rel


def check_out(out: Path, option: str, overwrite: bool, meta_name: str, command: str,
              planned: Iterable[str], previous_files: Callable[[Path], set[str]]) -> set[str]:
    """Refuse an unusable OUT before any work; return the files a previous run of `command` wrote
    there (as its meta, `meta_name`, lists them; read by `previous_files(out)`)."""
    if out.exists() and not out.is_dir():
        raise VcsegError(f"{out}: exists and is not a folder; choose another {option}")
    check_writable_dir(out, option)
    check_writable_dir(out.parent, option)  # the staging folder goes beside OUT
    if not out.is_dir() or not any(out.iterdir()):
        return set()
    if not overwrite:
        raise VcsegError(f"{out}: folder is not empty; choose an empty {option} or pass --overwrite")
    if not (out / meta_name).is_file():
        raise VcsegError(f"{out}: not empty and not a previous `{command}` output (no {meta_name}); "
                         f"refusing to write into it, choose another {option}")
    previous = previous_files(out)
    check_no_foreign_files(out, planned, previous, option)
    return previous


def check_no_foreign_files(out: Path, planned: Iterable[str], previous: set[str], option: str) -> None:
    """Refuse (one line) when a file this run would write exists in `out` and no earlier run wrote it."""
    for rel in planned:
        target = out / rel
        if rel not in previous and (target.exists() or target.is_symlink()):
            raise VcsegError(f"{target}: exists and was not written by an earlier run of this command; "
                             f"move it away or choose another {option}")


def remove_written(out: Path, files: Iterable[str]) -> None:
    """Delete `files` (relative to `out`), then every folder that this left empty, up to `out`."""
    emptied: set[Path] = set()
    for rel in files:
        target = out / rel
        if target.is_file() or target.is_symlink():
            target.unlink()
            emptied.add(target.parent)
    # deepest first, so that a parent emptied by its children's removal goes too
    for folder in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
        while folder != out and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def install(staging: Path, out: Path, written: list[str], previous: set[str]) -> None:
    """Move the files `written` (relative paths, the meta last) from `staging` into `out`, then
    remove the files of `previous` this run did not write again; `staging` is gone afterwards."""
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()
    if not out.exists():  # nothing to keep: the whole folder appears at once
        os.replace(staging, out)
        return
    for rel in written:
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, target)
    remove_written(out, sorted(previous - set(written)))
    shutil.rmtree(staging, ignore_errors=True)  # only emptied folders are left in it
