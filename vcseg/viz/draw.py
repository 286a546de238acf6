"""Drawing id maps over frames: pure array functions, no file I/O.

Everything is vectorised numpy (and OpenCV) on `(H, W)` uint8 id maps and `(H, W, 3)` uint8 RGB
images, done inside the box the objects occupy: outlines from comparing the map with its shifted
self, error classes from a table of every (prediction, GT) pair, then every pixel at once from a
table indexed by its id, error class and outline bit (fill, error or outline colour). Text (id
labels, the legend) is rendered once per string with PIL's built-in font (no system fonts) and
pasted as small arrays.

    draw_ids(panel, frame, ids)                       # fill, outlines, labels, into `panel`
    errors = error_classes(pred, gt, matched)         # MISSED / FALSE / SWITCH per pixel
    paint_errors(panel, errors)
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vcseg.io.masks import davis_palette
from vcseg.metrics.boundaries import bounding_box

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
    flat = sampled.ravel()
    at = np.flatnonzero(flat)  # the object pixels, all ids at once: one histogram per coordinate
    if at.size == 0:
        return {}
    object_ids = flat[at]
    rows, cols = np.divmod(at, sampled.shape[1])
    counts = np.bincount(object_ids, minlength=256)
    row_sums = np.bincount(object_ids, weights=rows, minlength=256)  # exact: integer sums in float64
    col_sums = np.bincount(object_ids, weights=cols, minlength=256)
    return {object_id: (int(round(row_sums[object_id] / counts[object_id] * step)),
                        int(round(col_sums[object_id] / counts[object_id] * step)))
            for object_id in np.flatnonzero(counts).tolist()}


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
    ids_box = bounding_box(ids, margin=1)  # the work is done where the objects (and errors) are
    box = ids_box
    if errors is not None:
        box = _union(box, error_box if error_box is not None else bounding_box(errors))
    if box is None:
        return
    box_ids = ids[box]  # the 1-pixel margin keeps the outlines those of the whole map
    code = box_ids.astype(np.uint16)
    if errors is not None:
        code |= errors[box].astype(np.uint16) << 8
    code |= outline_mask(box_ids).astype(np.uint16) << 10
    box_panel = panel[box]  # every pixel in two passes, (frame >> shift) + add by its code, on whole
    np.right_shift(frame[box], _lookup_rgb(_SHIFT_RGBX, code), out=box_panel)  # (h, w, 3) operands,
    np.add(box_panel, _lookup_rgb(_ADD_RGBX, code), out=box_panel)  # which numpy runs as long loops
    if ids_box is None:
        return
    labelled = ids[ids_box]
    step = 2 if labelled.size > 20_000 else 1  # label placement needs no more precision
    for object_id, (row, col) in centroids(labelled, step).items():
        if object_id in skip_labels:
            continue
        text = labels.get(object_id, str(object_id)) if labels else str(object_id)
        patch = text_patch(text, tuple(int(c) for c in PALETTE[object_id]))
        paste(panel, patch, row + ids_box[0].start - patch.shape[0] // 2,
              col + ids_box[1].start - patch.shape[1] // 2)


def _union(a: tuple[slice, slice] | None, b: tuple[slice, slice] | None) -> tuple[slice, slice] | None:
    """The smallest box holding boxes `a` and `b` (either may be None: nothing)."""
    if a is None or b is None:
        return a if b is None else b
    return (slice(min(a[0].start, b[0].start), max(a[0].stop, b[0].stop)),
            slice(min(a[1].start, b[1].start), max(a[1].stop, b[1].stop)))


def _composition() -> tuple[np.ndarray, np.ndarray]:
    """What `draw_ids` makes of a pixel of each code, id | error class << 8 | outline << 10: the drawn
    pixel is (frame >> shift) + add. Background keeps the frame (shift 0, add 0); a filled id halves
    it and adds half its colour (shift 1); an error, or an outline over anything, is its solid colour
    (shift 8: numpy shifts a uint8 by its width to 0). Returns shift and add, `(2048, 3)` uint8."""
    codes = np.arange(2048)
    ids, kinds, outline = codes & 255, (codes >> 8) & 3, (codes >> 10) & 1
    shift = np.repeat((ids > 0).astype(np.uint8)[:, None], 3, axis=1)
    add = _HALF_PALETTE[ids] * (ids > 0)[:, None].astype(np.uint8)
    for solid, colours in ((kinds > 0, _ERROR_LUT[kinds]), ((outline > 0) & (ids > 0), PALETTE[ids])):
        shift[solid] = 8
        add[solid] = colours[solid]
    return shift, add


def _rgbx(table: np.ndarray) -> np.ndarray:
    """An `(n, 3)` uint8 table as `(n,)` uint32, each row padded with a zero byte (`_lookup_rgb`)."""
    padded = np.zeros((len(table), 4), dtype=np.uint8)
    padded[:, :3] = table
    return padded.view(np.uint32).ravel()


def _lookup_rgb(table_rgbx: np.ndarray, code: np.ndarray) -> np.ndarray:
    """The `(h, w, 3)` rows of a table (as `_rgbx` packs it) at `(h, w)` indices `code`.

    numpy takes 4-byte items from a flat table three times faster than 3-byte rows along an axis
    (which it copies row by row); OpenCV then drops the padding byte in one SIMD pass."""
    rgbx = np.take(table_rgbx, code).view(np.uint8).reshape(*code.shape, 4)
    return cv2.cvtColor(rgbx, cv2.COLOR_RGBA2RGB)


_SHIFT, _ADD = _composition()
_SHIFT_RGBX, _ADD_RGBX = _rgbx(_SHIFT), _rgbx(_ADD)


def error_classes(pred: np.ndarray, gt: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """Per-pixel error class (NO_ERROR, MISSED, FALSE, SWITCH) of `pred` against `gt`, `(H, W)` uint8.

    matched: `(256,)` lookup, GT id -> the predicted id matched to it (0: none). A GT pixel
    under a predicted id other than its match is a SWITCH (an unmatched GT person's pixels under
    any predicted id too). Void must already be cut out of both maps (set to 0).

    Looked up per pixel in a table of every (pred, gt) pair, made once per `matched`: a third of
    the time of applying the rules to the maps (`_error_rules`).
    """
    code = gt.astype(np.uint16) << 8
    code |= pred
    return np.take(_error_table(matched.tobytes(), matched.dtype.str), code)


@functools.lru_cache(maxsize=8)
def _error_table(matched: bytes, dtype: str) -> np.ndarray:
    """`_error_rules` of every pair (pred, gt) at index pred | gt << 8, `(65536,)` uint8."""
    pairs = np.arange(65536)
    table = _error_rules((pairs & 255).astype(np.uint8), (pairs >> 8).astype(np.uint8),
                         np.frombuffer(matched, dtype=dtype))
    table.flags.writeable = False
    return table


def _error_rules(pred: np.ndarray, gt: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """`error_classes`, by its rules on the whole maps."""
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
