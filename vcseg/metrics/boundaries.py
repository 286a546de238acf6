"""Each mask's boundary and its dilation, computed once per frame and object, inside its bbox.

The boundary measure is the scorer's cost. Scoring P predictions against G ground-truth objects
pair by pair would compute P*G boundaries and dilations per frame; here each object gets one
`ObjectBoundary` per frame and every pair is then two look-ups of boundary pixels in the other
object's dilated boundary. Work stays inside bounding boxes: a boundary lies within one pixel
of its mask's bbox, and its dilation reaches at most r pixels beyond the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import find_objects

from vcseg.metrics.jf import boundary_map, dilate_disk, f_from_counts


@dataclass(frozen=True)
class ObjectBoundary:
    """One mask's boundary pixels and dilated boundary, in full-frame coordinates.

    rows, cols: boundary pixel coordinates, (N,) each.
    dilated: the boundary dilated by the disk, cropped to `top`, `left` (+ its shape).
    """

    rows: np.ndarray
    cols: np.ndarray
    dilated: np.ndarray
    top: int
    left: int

    @property
    def size(self) -> int:
        return int(self.rows.size)

    def count_within(self, other: ObjectBoundary) -> int:
        """How many of this boundary's pixels lie in `other`'s dilated boundary."""
        if self.size == 0 or other.size == 0:
            return 0
        height, width = other.dilated.shape
        rows, cols = self.rows - other.top, self.cols - other.left
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        return int(np.count_nonzero(other.dilated[rows[inside], cols[inside]]))


EMPTY_BOUNDARY = ObjectBoundary(rows=np.zeros(0, np.int64), cols=np.zeros(0, np.int64),
                                dilated=np.zeros((0, 0), bool), top=0, left=0)


def object_boundary(mask: np.ndarray, radius: int) -> ObjectBoundary:
    """The boundary and dilated boundary of a binary `(H, W)` mask, computed inside its bbox.

    Same result as `boundary_map` / `dilate_disk` on the full frame.
    """
    bbox = bounding_box(mask)
    if bbox is None:
        return EMPTY_BOUNDARY
    window = _window(bbox, mask.shape)
    return _boundary_of_window(np.asarray(mask[window], dtype=bool), window, mask.shape, radius)


def _window(bbox: tuple[slice, slice], shape: tuple[int, int]) -> tuple[slice, slice]:
    """The bbox grown by one pixel each side, clipped to the image.

    The boundary rules then give the full-frame answer on the crop: a crop edge inside the
    image is a row / column of background whose neighbours beyond are background too.
    """
    return (slice(max(bbox[0].start - 1, 0), min(bbox[0].stop + 1, shape[0])),
            slice(max(bbox[1].start - 1, 0), min(bbox[1].stop + 1, shape[1])))


def _boundary_of_window(crop: np.ndarray, window: tuple[slice, slice], shape: tuple[int, int],
                        radius: int) -> ObjectBoundary:
    height, width = shape
    rows, cols = np.nonzero(boundary_map(crop))
    if rows.size == 0:
        return EMPTY_BOUNDARY
    rows, cols = rows + window[0].start, cols + window[1].start
    # the dilation reaches `radius` beyond the boundary's own bbox
    top, left = max(int(rows.min()) - radius, 0), max(int(cols.min()) - radius, 0)
    bottom, right = min(int(rows.max()) + radius + 1, height), min(int(cols.max()) + radius + 1, width)
    local = np.zeros((bottom - top, right - left), dtype=bool)
    local[rows - top, cols - left] = True
    return ObjectBoundary(rows=rows, cols=cols, dilated=dilate_disk(local, radius), top=top, left=left)


def frame_boundaries(ids: np.ndarray, object_ids: list[int], radius: int) -> dict[int, ObjectBoundary]:
    """`ObjectBoundary` of each id in `object_ids` in the `(H, W)` id map `ids` (absent -> empty)."""
    wanted = [i for i in object_ids if i > 0]
    if not wanted:
        return {}
    occupied = bounding_box(ids)
    if occupied is None:
        return {object_id: EMPTY_BOUNDARY for object_id in wanted}
    # one pass finds every id's bbox, over the rows and columns that hold any id (persons cover
    # a part of the frame: a quarter of the pass over the whole of it, in our scorer benchmark)
    slices = find_objects(ids[occupied], max_label=max(wanted))
    top, left = occupied[0].start, occupied[1].start
    out: dict[int, ObjectBoundary] = {}
    for object_id in wanted:
        bbox = slices[object_id - 1]
        if bbox is None:
            out[object_id] = EMPTY_BOUNDARY
            continue
        bbox = (slice(bbox[0].start + top, bbox[0].stop + top), slice(bbox[1].start + left, bbox[1].stop + left))
        window = _window(bbox, ids.shape)
        out[object_id] = _boundary_of_window(ids[window] == object_id, window, ids.shape, radius)
    return out


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """Rows and columns holding every True pixel of `mask`, widened by `margin` (None: no pixel)."""
    if mask.dtype in (np.uint8, np.bool_) and mask.ndim == 2 and mask.size:
        # OpenCV scans the non-zero pixels of a byte map in one pass, twice as fast as two `any`
        left, top, width, height = cv2.boundingRect(mask.view(np.uint8))
        if width == 0:
            return None
        rows, cols = (top, top + height - 1), (left, left + width - 1)
    else:
        row_on, col_on = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if row_on.size == 0:
            return None
        rows, cols = (int(row_on[0]), int(row_on[-1])), (int(col_on[0]), int(col_on[-1]))
    return (slice(max(rows[0] - margin, 0), rows[1] + 1 + margin),
            slice(max(cols[0] - margin, 0), cols[1] + 1 + margin))


def pair_f(pred: ObjectBoundary, gt: ObjectBoundary) -> float:
    """F of one frame for a prediction / ground-truth pair of precomputed boundaries."""
    return f_from_counts(pred.size, gt.size, pred.count_within(gt), gt.count_within(pred))
