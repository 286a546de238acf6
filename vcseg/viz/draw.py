"""Drawing id maps over frames: pure array functions, no file I/O.

Everything is vectorised numpy on `(H, W)` uint8 id maps and `(H, W, 3)` uint8 RGB images: one
palette lookup for the fill, outlines from comparing the map with its shifted self, error classes
from a few boolean comparisons. Text (id labels, the legend) is rendered once per string with
PIL's built-in font (no system fonts) and pasted as small arrays.

    draw_ids(panel, frame, ids)                       # fill, outlines, labels, into `panel`
    errors = error_classes(pred, gt, matched)         # MISSED / FALSE / SWITCH per pixel
    paint_errors(panel, errors)
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vcseg.io.masks import davis_palette

PALETTE = davis_palette()  # (256, 3)
#: Share of the id colour in a filled pixel: 0.5, computed as (frame >> 1) + (colour >> 1).
FILL_ALPHA = 0.5
_HALF_PALETTE = PALETTE >> 1

# Error classes of `error_classes`, and their colours: pure 255-valued colours, which no DAVIS
# palette entry has (its channels stop at 224), so an error never reads as an id.
NO_ERROR, MISSED, FALSE, SWITCH = 0, 1, 2, 3
ERROR_COLOURS = {
    MISSED: (255, 0, 255),  # GT person, predicted background: magenta
    FALSE: (255, 255, 0),  # predicted person on GT background: yellow
    SWITCH: (0, 255, 255),  # GT person under a predicted id other than its match: cyan
}
ERROR_NAMES = {MISSED: "missed", FALSE: "false", SWITCH: "id switch"}
_ERROR_LUT = np.zeros((4, 3), dtype=np.uint8)
for _kind, _colour in ERROR_COLOURS.items():
    _ERROR_LUT[_kind] = _colour

LEGEND_HEIGHT = 14  # rows of the legend strip under the panels (ground-truth mode)
_TEXT = (255, 255, 255)


def outline_mask(ids: np.ndarray) -> np.ndarray:
    """Boundary pixels of every object: an id > 0 with a 4-neighbour of another value, `(H, W)` bool."""
    edge = np.zeros(ids.shape, dtype=bool)
    horizontal = ids[:, 1:] != ids[:, :-1]
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    vertical = ids[1:] != ids[:-1]
    edge[1:] |= vertical
    edge[:-1] |= vertical
    edge &= ids > 0
    return edge


def centroids(ids: np.ndarray, step: int = 1) -> dict[int, tuple[int, int]]:
    """(row, column) of the centroid of every id > 0 present in `ids[::step, ::step]`."""
    sampled = ids[::step, ::step]
    present = np.flatnonzero(np.bincount(sampled.ravel(), minlength=256)[1:]) + 1
    found = {}
    for object_id in present.tolist():  # a few persons per frame: one comparison each
        rows, cols = np.nonzero(sampled == object_id)
        found[object_id] = (int(round(rows.mean() * step)), int(round(cols.mean() * step)))
    return found


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """Rows and columns holding every True pixel of `mask`, widened by `margin` (None: no pixel)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return (slice(max(rows[0] - margin, 0), rows[-1] + 1 + margin),
            slice(max(cols[0] - margin, 0), cols[-1] + 1 + margin))


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


@functools.lru_cache(maxsize=1024)
def text_patch(text: str, background: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """`text` in white on a `background` box with 1 px padding, `(h, w, 3)` uint8 (cached)."""
    font = _font()
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("RGB", (right - left + 2, bottom - top + 2), background)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"  # crisp pixels, no anti-aliasing: small text stays readable after encoding
    draw.text((1 - left, 1 - top), text, fill=_TEXT, font=font)
    patch = np.asarray(image)
    patch.flags.writeable = False
    return patch


def paste(canvas: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Copy `patch` into `canvas` at (top, left), moved inside the canvas where it would overflow."""
    height, width = canvas.shape[:2]
    top = max(0, min(top, height - patch.shape[0]))
    left = max(0, min(left, width - patch.shape[1]))
    region = canvas[top:top + patch.shape[0], left:left + patch.shape[1]]
    region[...] = patch[:region.shape[0], :region.shape[1]]


def draw_ids(panel: np.ndarray, frame: np.ndarray, ids: np.ndarray, *, errors: np.ndarray | None = None,
             error_box: tuple[slice, slice] | None = None, labels: dict[int, str] | None = None,
             skip_labels: tuple[int, ...] = ()) -> None:
    """Draw `ids` over `frame` into `panel` (both `(H, W, 3)` uint8, `panel` may be a view).

    Every id > 0 gets a semi-transparent fill in its palette colour (FILL_ALPHA), a solid
    outline (its boundary pixels in the exact palette colour) and its number in a box of its
    colour near its centroid. `errors` (from `error_classes`) paints error pixels solid in
    ERROR_COLOURS, under the outlines; error_box, where given, holds all of them. labels: text
    per id instead of its number; ids in skip_labels get none (void).
    """
    np.copyto(panel, frame)
    objects = ids > 0
    box = bounding_box(objects, margin=1)  # the work is done where the objects are
    if box is not None:
        box_ids, box_objects, box_panel = ids[box], objects[box], panel[box]
        tinted = (frame[box] >> 1) + np.take(_HALF_PALETTE, box_ids, axis=0)
        np.copyto(box_panel, tinted, where=box_objects[..., None])
    if errors is not None:
        paint_errors(panel, errors, error_box)
    if box is None:
        return
    edge = outline_mask(box_ids)  # the 1-pixel margin keeps the box's border pixels background
    box_panel[edge] = PALETTE[box_ids[edge]]
    step = 2 if box_ids.size > 20_000 else 1  # label placement needs no more precision
    for object_id, (row, col) in centroids(box_ids, step).items():
        if object_id in skip_labels:
            continue
        text = labels.get(object_id, str(object_id)) if labels else str(object_id)
        patch = text_patch(text, tuple(int(c) for c in PALETTE[object_id]))
        paste(panel, patch, row + box[0].start - patch.shape[0] // 2, col + box[1].start - patch.shape[1] // 2)


def error_classes(pred: np.ndarray, gt: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """Per-pixel error class (NO_ERROR, MISSED, FALSE, SWITCH) of `pred` against `gt`, `(H, W)` uint8.

    matched: `(256,)` lookup, GT id -> the predicted id matched to it (0: none). A GT pixel
    under a predicted id other than its match is a SWITCH (an unmatched GT person's pixels under
    any predicted id too). Void must already be cut out of both maps (set to 0).
    """
    gt_on = gt > 0
    pred_on = pred > 0
    classes = np.zeros(gt.shape, dtype=np.uint8)
    classes[gt_on & ~pred_on] = MISSED
    classes[pred_on & ~gt_on] = FALSE
    classes[gt_on & pred_on & (pred != np.take(matched, gt))] = SWITCH
    return classes


def paint_errors(panel: np.ndarray, errors: np.ndarray, box: tuple[slice, slice] | None = None) -> None:
    """Paint the pixels of every error class solid in its colour (all of them inside `box`, if given)."""
    if box is not None:
        panel, errors = panel[box], errors[box]
    wrong = errors > 0
    panel[wrong] = _ERROR_LUT[errors[wrong]]


def legend_strip(width: int, panel_width: int) -> np.ndarray:
    """The `(LEGEND_HEIGHT, width, 3)` strip under the panels: titles and the error colours."""
    image = Image.new("RGB", (width, LEGEND_HEIGHT), (0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"
    font = _font()
    baseline = 1 - font.getbbox("Ag")[1]
    x = 2
    draw.text((x, baseline), "prediction", fill=_TEXT, font=font)
    x += int(font.getlength("prediction")) + 8
    for kind, name in ERROR_NAMES.items():
        draw.rectangle((x, 3, x + 7, LEGEND_HEIGHT - 4), fill=ERROR_COLOURS[kind])
        x += 10
        draw.text((x, baseline), name, fill=_TEXT, font=font)
        x += int(font.getlength(name)) + 8
    draw.text((panel_width + 2, baseline), "ground truth", fill=_TEXT, font=font)
    return np.asarray(image)


def even(value: int) -> int:
    """`value` rounded up to even (H.264 in yuv420p needs even sizes)."""
    return value + (value & 1)
