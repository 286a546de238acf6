"""Where the prediction PNGs are: a folder on disk or an existing zip, behind one interface.

The validation core (`vcseg.pack.validate`) only sees relative POSIX file names and their bytes,
so the same checks run on `PRED_DIR` before packing and on a finished zip with `--check`.
"""

from __future__ import annotations

import abc
import os
import zipfile
from pathlib import Path

from vcseg.errors import VcsegError


class MaskSource(abc.ABC):
    """A set of files named by relative POSIX paths (`video/00001.png`), readable as bytes."""

    #: True where every listed file ends up in the submission (a zip); False for a folder, whose
    #: hidden files (`.DS_Store`, `.ipynb_checkpoints/`) are simply not packed.
    ships_every_file: bool

    @property
    @abc.abstractmethod
    def root(self) -> Path:
        """The folder or zip file itself (for messages)."""

    @abc.abstractmethod
    def names(self) -> list[str]:
        """Every file's relative POSIX name, sorted; duplicates kept (a zip may hold some)."""

    @abc.abstractmethod
    def read(self, name: str) -> bytes:
        """The bytes of file `name`; OSError / zipfile errors for unreadable files."""

    def location(self, name: str) -> Path:
        """How messages refer to `name`: the folder path, or `ZIP/name` for a zip."""
        return self.root / name

    def close(self) -> None:
        """Release what the source holds open."""

    def __enter__(self) -> MaskSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class FolderSource(MaskSource):
    """`PRED_DIR/<video>/<stem>.png` on disk."""

    ships_every_file = False

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._root = Path(folder)
        if not self._root.is_dir():
            raise VcsegError(f"{self._root}: not a directory; give the folder holding <video>/<frame>.png")

    @property
    def root(self) -> Path:
        return self._root

    def names(self) -> list[str]:
        found = []
        for folder, dirs, files in os.walk(self._root):
            dirs.sort()
            relative = Path(folder).relative_to(self._root)
            found.extend((relative / name).as_posix() for name in files)
        return sorted(found)

    def read(self, name: str) -> bytes:
        return (self._root / name).read_bytes()


class ZipSource(MaskSource):
    """The file entries of a zip, read in memory; directory entries are ignored."""

    ships_every_file = True

    def __init__(self, zip_path: str | os.PathLike[str]) -> None:
        self._root = Path(zip_path)
        try:
            self._zip = zipfile.ZipFile(self._root)
        except FileNotFoundError:
            raise VcsegError(f"{self._root}: zip file not found") from None
        except (zipfile.BadZipFile, OSError) as error:
            raise VcsegError(f"{self._root}: not a readable zip ({error}); pack it again with vcseg pack") from None

    @property
    def root(self) -> Path:
        return self._root

    def names(self) -> list[str]:
        return sorted(info.filename for info in self._zip.infolist() if not info.is_dir())

    def read(self, name: str) -> bytes:
        return self._zip.read(name)

    def close(self) -> None:
        self._zip.close()
