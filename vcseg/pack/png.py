"""Inspecting one submitted PNG from its bytes, and converting it to an indexed PNG for --fix.

`vcseg.io.masks.read_mask` reads files and converts what it can; packing needs more than the ids:
the file format, the PIL mode (P and L are allowed as they are, others are not) and whether a
conversion is needed, all from bytes, since `--check` reads PNGs from a zip in memory.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from vcseg.io.masks import encode_mask_png

# What --fix does to a mask: store 255 as id 1 ("binary"), or keep the values as ids ("gray").
BINARY, GRAY = "binary", "gray"

_FIX_HINT = "pass --fix to store it as an indexed PNG"


@dataclass(frozen=True)
class PngFindings:
    """What one PNG holds: its size, the ids it would contribute, and what is wrong with it."""

    height: int | None
    width: int | None
    ids: frozenset[int]  # nonzero ids present, after the --fix conversion where one applies
    conversion: str | None  # BINARY / GRAY where --fix converts this file, else None (copied as is)
    errors: tuple[str, ...]  # one message per problem; empty when the file is fine


def _present_ids(ids: np.ndarray) -> frozenset[int]:
    """Nonzero values of a uint8 `(H, W)` array; bincount is far cheaper than np.unique here."""
    counts = np.bincount(ids.ravel(), minlength=256)
    return frozenset(int(i) for i in np.flatnonzero(counts[1:]) + 1)


def _is_binary_255(values: frozenset[int]) -> bool:
    return values == frozenset({255})


def inspect_png(data: bytes, *, fix: bool = False) -> PngFindings:
    """Check a submitted mask's bytes: a PNG, single channel (P or L), its ids.

    Without `fix`, an L mask holding only 0 and 255 is an error (255 would count as id 255) and a
    1-bit mask is an error; with `fix` both are accepted and marked for conversion, as is every
    L mask (ids kept). RGB, alpha and 16-bit masks are errors either way: their ids are ambiguous.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            file_format, mode = image.format, image.mode
            width, height = image.size
            channels = len(image.getbands())
            image.load()  # raises on truncated files, unlike the lazy open
            array = np.asarray(image)
    except Exception as error:  # PIL raises many types for broken files
        return PngFindings(None, None, frozenset(), None,
                           (f"cannot read this PNG ({error}); export the mask again",))

    def failed(message: str) -> PngFindings:
        return PngFindings(height, width, frozenset(), None, (message,))

    if file_format != "PNG":
        return failed(f"is a {file_format} file, not a PNG; save masks as PNG "
                      "(lossy formats change the ids at object borders)")
    if mode == "P":
        return PngFindings(height, width, _present_ids(array), None, ())
    if mode == "L":
        values = _present_ids(array)
        if _is_binary_255(values):
            if fix:
                return PngFindings(height, width, frozenset({1}), BINARY, ())
            return failed("0/255 binary mask: the scorer reads pixel values as ids, so 255 would be "
                          f"person id 255, not person 1; {_FIX_HINT} (255 becomes id 1)")
        return PngFindings(height, width, values, GRAY if fix else None, ())
    if mode == "1":
        ids = frozenset({1}) if array.any() else frozenset()
        if fix:
            return PngFindings(height, width, ids, GRAY, ())
        return failed(f"1-bit mask; the competition takes 8-bit masks (mode P or L); {_FIX_HINT}")
    if mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
        return failed(f"{mode} mask ({channels} channels); the submission "
                      "needs single-channel PNGs: save it as an indexed PNG (mode P, pixel = person "
                      "id, e.g. vcseg.io.masks.write_mask); --fix cannot tell ids from colours")
    if mode in ("LA", "PA"):
        return failed(f"{mode} mask (with an alpha channel); save it without alpha as an indexed "
                      "PNG (mode P, pixel = person id)")
    if mode.startswith("I"):
        return failed(f"{mode} (16/32-bit) mask; save it as an 8-bit indexed PNG (mode P, pixel = person id)")
    return failed(f"unsupported PNG mode {mode!r}; save it as an 8-bit indexed PNG (mode P, pixel = person id)")


def indexed_png(data: bytes, conversion: str) -> bytes:
    """Re-encode an L / 1-bit mask as an indexed PNG: BINARY maps 255 to id 1, GRAY keeps values."""
    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(image)  # (H, W) uint8, or bool for mode 1
    if conversion == BINARY:
        ids = (array == 255).astype(np.uint8)
    elif conversion == GRAY:
        ids = array.astype(np.uint8)
    else:
        raise ValueError(f"unknown conversion {conversion!r}")
    return encode_mask_png(ids)
