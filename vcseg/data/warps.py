"""Geometric warps for training clips: affine matrices, crop windows, elastic fields, one remap.

Everything here is a pure function of its arguments (random draws take an `np.random.Generator`),
so a clip is reproducible from its seed. Coordinates are (x, y) pixels, as OpenCV wants them.

A warp maps a source frame onto a *canvas* of the source's size (the affine matrix, 2x3, source
-> canvas), then a crop window of the canvas is cut out. Both happen in one OpenCV call per frame
(the crop folded into the matrix), so a full-size warped frame is never made. Frames are resampled
bilinear, masks nearest so that ids never blend; what falls outside the source is filled with
`fill` (frames) and 0, background (masks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AffineRange:
    """Ranges of a random affine warp; each draw is uniform within its range.

    rotate: maximum rotation in degrees (either way); scale: (low, high) zoom factor;
    shear: maximum shear in degrees (either way, along x and along y independently);
    translate: maximum shift as a fraction of the frame's width / height; flip: probability of a
    horizontal flip.
    """

    rotate: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    shear: float = 0.0
    translate: float = 0.0
    flip: float = 0.0


def affine_matrix(center_xy: tuple[float, float], *, angle: float = 0.0, scale: float = 1.0,
                  shear_xy: tuple[float, float] = (0.0, 0.0), translate_xy: tuple[float, float] = (0.0, 0.0),
                  flip: bool = False) -> np.ndarray:
    """The (2, 3) matrix source (x, y) -> canvas (x, y): flip, rotate, shear, scale about the centre,
    then shift by `translate_xy` pixels. Angles are in degrees, counter-clockwise on screen."""
    cx, cy = center_xy
    to_origin = np.array([[1.0, 0.0, -cx], [0.0, 1.0, -cy], [0.0, 0.0, 1.0]])
    mirror = np.diag([-1.0 if flip else 1.0, 1.0, 1.0])
    theta = math.radians(angle)
    # y points down on screen, so a counter-clockwise turn on screen is clockwise in (x, y)
    rotation = np.array([[math.cos(theta), math.sin(theta), 0.0],
                         [-math.sin(theta), math.cos(theta), 0.0], [0.0, 0.0, 1.0]])
    shear = np.array([[1.0, math.tan(math.radians(shear_xy[0])), 0.0],
                      [math.tan(math.radians(shear_xy[1])), 1.0, 0.0], [0.0, 0.0, 1.0]])
    zoom = np.diag([scale, scale, 1.0])
    back = np.array([[1.0, 0.0, cx + translate_xy[0]], [0.0, 1.0, cy + translate_xy[1]], [0.0, 0.0, 1.0]])
    return (back @ zoom @ shear @ rotation @ mirror @ to_origin)[:2]


def random_affine(rng: np.random.Generator, size_hw: tuple[int, int], ranges: AffineRange,
                  flip: bool | None = None) -> np.ndarray:
    """A (2, 3) matrix drawn from `ranges` for a frame of `size_hw`, about the frame's centre.

    flip: force the flip decision (None: draw it with probability `ranges.flip`). The draws are
    always made in the same order, whatever the ranges, so changing one range leaves the others'
    draws unchanged.
    """
    height, width = size_hw
    angle = rng.uniform(-1.0, 1.0) * ranges.rotate
    scale = rng.uniform(*ranges.scale)
    shear = rng.uniform(-1.0, 1.0, size=2) * ranges.shear
    shift = rng.uniform(-1.0, 1.0, size=2) * ranges.translate * np.array([width, height])
    flipped = bool(rng.random() < ranges.flip)
    if flip is not None:
        flipped = flip
    return affine_matrix(((width - 1) / 2, (height - 1) / 2), angle=float(angle), scale=float(scale),
                         shear_xy=(float(shear[0]), float(shear[1])),
                         translate_xy=(float(shift[0]), float(shift[1])), flip=flipped)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The (2, 3) matrix applying `inner` first, then `outer`."""
    return (np.vstack([outer, [0.0, 0.0, 1.0]]) @ np.vstack([inner, [0.0, 0.0, 1.0]]))[:2]


def apply_to_point(matrix: np.ndarray, point_xy: tuple[float, float]) -> tuple[float, float]:
    x, y = matrix @ np.array([point_xy[0], point_xy[1], 1.0])
    return float(x), float(y)


def crop_origin(rng: np.random.Generator, canvas_hw: tuple[int, int], crop_hw: tuple[int, int],
                point_xy: tuple[float, float] | None = None) -> tuple[int, int]:
    """Top-left (y0, x0) of a `crop_hw` window on a canvas of `canvas_hw`, uniform among windows.

    A window smaller than the canvas lies inside it; a larger one covers it (the canvas lands at a
    random place inside the window, the rest is padding). With `point_xy`, only windows holding
    that pixel are drawn, where one exists (so the crop shows part of an object).
    """
    origin = []
    for extent, size, coord in zip(canvas_hw, crop_hw, (None, None) if point_xy is None else point_xy[::-1]):
        low, high = min(0, extent - size), max(0, extent - size)
        if coord is not None:
            pixel = int(round(coord))  # OpenCV puts pixel i's centre at coordinate i
            near_low, near_high = max(low, pixel - size + 1), min(high, pixel)
            if near_low <= near_high:
                low, high = near_low, near_high
        origin.append(int(rng.integers(low, high + 1)))
    return origin[0], origin[1]


def elastic_field(rng: np.random.Generator, size_hw: tuple[int, int], magnitude: float,
                  cell: int) -> np.ndarray:
    """A smooth random displacement field, (2, H, W) float32 pixels (dx, dy).

    Gaussian noise of standard deviation `magnitude` pixels on a coarse grid (a node every `cell`
    pixels), upsampled bicubically: the result varies smoothly over about `cell` pixels, like the
    Gaussian-filtered noise of Simard et al. (2003), at a fraction of the cost.
    """
    height, width = size_hw
    nodes = (max(2, math.ceil(height / cell) + 1), max(2, math.ceil(width / cell) + 1))
    coarse = rng.normal(0.0, magnitude, size=(2, *nodes)).astype(np.float32)
    return np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_CUBIC) for c in coarse])


def warp(frame: np.ndarray, mask: np.ndarray, matrix: np.ndarray, origin: tuple[int, int],
         crop_hw: tuple[int, int], field: np.ndarray | None = None,
         fill: tuple[int, int, int] = (0, 0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Warp an (H, W, 3) uint8 frame and its (H, W) uint8 id mask by `matrix` (source -> canvas),
    then cut the `crop_hw` window at `origin` = (y0, x0) of the canvas; returns (h, w, 3), (h, w).

    field: optional (2, h, w) displacement (dx, dy) in crop pixels: output pixel p shows the
    canvas at p + field[:, p] (an elastic warp on top of the affine one).
    """
    height, width = crop_hw
    y0, x0 = origin
    to_crop = compose(np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]]), matrix)  # source -> crop
    if field is None:
        out_frame = cv2.warpAffine(frame, to_crop, (width, height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
        out_mask = cv2.warpAffine(mask, to_crop, (width, height), flags=cv2.INTER_NEAREST,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out_frame, out_mask
    inverse = cv2.invertAffineTransform(to_crop)  # crop -> source
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    xs, ys = xs + field[0], ys + field[1]
    map_x = (inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]).astype(np.float32)  # h, w
    map_y = (inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]).astype(np.float32)
    out_frame = cv2.remap(frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=fill)
    out_mask = cv2.remap(mask, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=0)
    return out_frame, out_mask
