"""Writing the submission zip deterministically: the same entries give the same bytes."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from vcseg.io.atomic import atomic_path

# Fixed metadata, so that the bytes depend on the entries only (not on the clock, the platform
# or the umask): the earliest date a zip can store, a regular file readable by all, "Unix" as the
# creating system, and one compression level.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_FILE_ATTR = (0o100644 << 16)  # S_IFREG | rw-r--r--, in the high 16 bits as Unix zips store it
ZIP_CREATE_SYSTEM = 3  # Unix
ZIP_COMPRESS_LEVEL = 6


def zip_info(arcname: str) -> zipfile.ZipInfo:
    """A ZipInfo whose every field is fixed except the name."""
    info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = ZIP_FILE_ATTR
    info.create_system = ZIP_CREATE_SYSTEM
    return info


def write_zip(out: str | os.PathLike[str], arcnames: Iterable[str], read: Callable[[str], bytes],
              progress: Callable[[int, int], None] | None = None) -> int:
    """Write the entries `arcnames`, sorted, with data `read(arcname)`, to `out` atomically.

    Returns the zip's size in bytes. The data is read one entry at a time (never all in memory).
    The zip is built under a temporary name beside `out` and renamed at the end, so an existing
    `out` is either replaced whole or left untouched (also when `read` raises).
    """
    out = Path(out)
    ordered = sorted(arcnames)
    with atomic_path(out) as tmp:
        with zipfile.ZipFile(tmp, "w") as archive:
            for done, arcname in enumerate(ordered, start=1):
                archive.writestr(zip_info(arcname), read(arcname), compresslevel=ZIP_COMPRESS_LEVEL)
                if progress is not None:
                    progress(done, len(ordered))
    return out.stat().st_size
