"""Reading video frames (JPG) and ordering them by their file stems."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from vcseg.errors import VcsegError

FRAME_SUFFIXES = (".jpg", ".jpeg")
MASK_SUFFIX = ".png"
IMAGENET_MEAN_RGB = (124, 116, 104)  # ImageNet mean in 0..255: padding that normalizes to ~0

_DIGITS = re.compile(r"(\d+)")


def frame_sort_key(stem: str) -> tuple:
    """Natural order: `frame2` before `frame10`, `00009` before `00010`."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(stem))


def sorted_stems(stems: Iterable[str]) -> list[str]:
    return sorted(stems, key=frame_sort_key)


def has_suffix(name: str, suffixes: tuple[str, ...]) -> bool:
    """Whether a file name ends in one of `suffixes` (lower case; the name's in any case) and is
    not hidden: the rule for frames and masks, before asking whether the entry is a file."""
    return os.path.splitext(name)[1].lower() in suffixes and not name.startswith(".")


def is_frame_file(path: Path) -> bool:
    return has_suffix(path.name, FRAME_SUFFIXES) and path.is_file()


def is_mask_file(path: Path) -> bool:
    return has_suffix(path.name, (MASK_SUFFIX,)) and path.is_file()


def read_frame(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a frame as an `(H, W, 3)` uint8 RGB array; VcsegError naming the file if broken."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()  # raises on truncated files, unlike the lazy open
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise VcsegError(f"{path}: frame file not found") from None
    except Exception as error:
        raise VcsegError(f"{path}: cannot decode frame ({error}); re-export or remove it") from None


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(height, width) of an image file from its header, without decoding the pixels."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception as error:
        raise VcsegError(f"{path}: cannot read image header ({error})") from None
    return height, width


_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOF0..SOF15 (not DHT, JPG, DAC)


def jpeg_size(data: bytes | np.ndarray) -> tuple[int, int] | None:
    """(height, width) from the frame header of a JPEG's bytes (None: not a JPEG, or no header
    before the scan): `image_size` for a file already in memory, at no cost of opening it again."""
    data = memoryview(data).cast("B")
    if bytes(data[:2]) != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        length = data[position + 2] << 8 | data[position + 3]
        if marker in _JPEG_FRAME_MARKERS:
            if position + 9 > len(data):
                return None
            height = data[position + 5] << 8 | data[position + 6]
            width = data[position + 7] << 8 | data[position + 8]
            return (height, width) if height and width else None  # height 0: set later by a DNL marker
        if marker == 0xDA or length < 2:  # the scan began without a frame header, or a broken length
            return None
        position += 2 + length
    return None


def numbering_gaps(stems: list[str]) -> list[tuple[str, str]]:
    """Pairs of consecutive numeric stems whose numbers are not consecutive (frames missing between).

    Only stems that are plain numbers take part; `00007`, `00009` gives [("00007", "00009")].
    """
    numbered = [(int(stem), stem) for stem in stems if stem.isdigit()]
    numbered.sort()
    return [(a_stem, b_stem) for (a, a_stem), (b, b_stem) in zip(numbered, numbered[1:]) if b - a > 1]
