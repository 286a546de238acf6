"""Training targets of the proposal network, made from one (H, W) instance-id mask.

`make_targets(ids, stride, sigma, min_area)` returns float32 numpy maps at the output resolution
(h, w) = (H, W) / stride:

    foreground         (1, h, w)  1 on person pixels (id > 0), 0 elsewhere
    foreground_weight  (1, h, w)  1, 0 on void pixels (id 255, DAVIS's "don't care")
    centre             (1, h, w)  max over instances of a Gaussian (peak exactly 1) at the
                                  instance's centre of mass
    centre_weight      (1, h, w)  1, 0 on void pixels and on pixels of small instances
    offsets            (2, h, w)  (dy, dx) from the pixel to its instance's centre, in output
                                  pixels, on instance pixels; 0 elsewhere
    offset_weight      (1, h, w)  1 on the pixels of instances that have a centre, 0 elsewhere

Conventions:
- output pixel (i, j) stands for input pixel (stride*i + stride//2, stride*j + stride//2) (ids are
  sampled there, nearest), and its centre lies at input coordinate stride*i + (stride-1)/2, the
  convention of bilinear upsampling with align_corners=False;
- an instance's centre is its centre of mass at full resolution, mapped to output coordinates
  and rounded to the nearest output pixel (as Panoptic-DeepLab), so the heatmap peaks at exactly
  1 there and the offsets point at that pixel;
- `sigma` is in input pixels (8 as Panoptic-DeepLab), i.e. sigma / stride output pixels;
- an instance with fewer than `min_area` input pixels is ignored as an instance: no peak, no
  centre or offset loss on its pixels (the network is neither taught nor punished for finding
  it), but its pixels stay foreground. Hand-held objects are part of their person's id in the
  labels, so they are part of the person here too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

VOID_ID = 255

TARGET_KEYS = ("foreground", "foreground_weight", "centre", "centre_weight", "offsets", "offset_weight")


def sample_ids(ids: np.ndarray, stride: int) -> np.ndarray:
    """The (H, W) id mask at the output resolution (H/stride, W/stride), nearest (see module docstring)."""
    return ids[stride // 2::stride, stride // 2::stride]


def to_output_coordinates(value: float, stride: int) -> float:
    """An input-pixel coordinate in output pixels (output pixel i is centred at stride*i + (stride-1)/2)."""
    return (value - (stride - 1) / 2) / stride


def instance_centres(ids: np.ndarray, void_id: int = VOID_ID) -> dict[int, tuple[float, float, int]]:
    """id -> (y, x centre of mass in input pixels, area in pixels) for every id > 0 of an (H, W) mask."""
    flat = ids.ravel().astype(np.int64)
    areas = np.bincount(flat, minlength=256)
    rows, cols = np.indices(ids.shape)
    sum_y = np.bincount(flat, weights=rows.ravel(), minlength=256)
    sum_x = np.bincount(flat, weights=cols.ravel(), minlength=256)
    return {int(i): (float(sum_y[i] / areas[i]), float(sum_x[i] / areas[i]), int(areas[i]))
            for i in np.flatnonzero(areas) if 0 < i != void_id}


def make_targets(ids: np.ndarray, stride: int = 4, sigma: float = 8.0, min_area: int = 100,
                 void_id: int = VOID_ID) -> dict[str, np.ndarray]:
    """The six target maps of an (H, W) id mask (module docstring); H and W multiples of `stride`."""
    if ids.ndim != 2:
        raise ValueError(f"ids must be an (H, W) mask (got shape {ids.shape})")
    if ids.shape[0] % stride or ids.shape[1] % stride:
        raise ValueError(f"mask size {ids.shape} is not a multiple of the output stride {stride}")
    sampled = sample_ids(ids, stride)  # h, w
    height, width = sampled.shape
    void = sampled == void_id
    foreground = (sampled > 0) & ~void
    centre = np.zeros((height, width), np.float32)
    centre_weight = (~void).astype(np.float32)
    offsets = np.zeros((2, height, width), np.float32)
    offset_weight = np.zeros((height, width), np.float32)
    rows = np.arange(height, dtype=np.float32)
    cols = np.arange(width, dtype=np.float32)
    out_sigma = sigma / stride
    for object_id, (centre_y, centre_x, area) in instance_centres(ids, void_id).items():
        pixels = sampled == object_id
        if area < min_area:
            centre_weight[pixels] = 0.0
            continue
        peak_y = int(np.clip(round(to_output_coordinates(centre_y, stride)), 0, height - 1))
        peak_x = int(np.clip(round(to_output_coordinates(centre_x, stride)), 0, width - 1))
        # separable Gaussian: exp(-(dy^2 + dx^2) / 2s^2) = exp(-dy^2 / 2s^2) * exp(-dx^2 / 2s^2)
        gaussian = np.outer(np.exp(-(rows - peak_y) ** 2 / (2 * out_sigma ** 2)),
                            np.exp(-(cols - peak_x) ** 2 / (2 * out_sigma ** 2)))
        np.maximum(centre, gaussian.astype(np.float32), out=centre)
        pixel_y, pixel_x = np.nonzero(pixels)
        offsets[0, pixel_y, pixel_x] = peak_y - pixel_y
        offsets[1, pixel_y, pixel_x] = peak_x - pixel_x
        offset_weight[pixels] = 1.0
    return {"foreground": foreground.astype(np.float32)[None], "foreground_weight": (~void).astype(np.float32)[None],
            "centre": centre[None], "centre_weight": centre_weight[None], "offsets": offsets,
            "offset_weight": offset_weight[None]}


@dataclass(frozen=True)
class TargetSpec:
    """How to make targets: a picklable callable for datasets (DataLoader workers copy it).

    Example:
        spec = TargetSpec.from_config(config)  # a ProposalConfig
        data = FrameDataset(files, short_side=480, crop=384, targets=spec)
    """

    stride: int = 4
    sigma: float = 8.0
    min_area: int = 100

    @classmethod
    def from_config(cls, config) -> TargetSpec:
        """The spec of a `ProposalConfig` (its output_stride, centre_sigma, target_min_area)."""
        return cls(stride=config.output_stride, sigma=config.centre_sigma, min_area=config.target_min_area)

    def __call__(self, ids: np.ndarray) -> dict[str, torch.Tensor]:
        """(H, W) ids -> the target maps as float32 tensors."""
        return {key: torch.from_numpy(value) for key, value in
                make_targets(ids, self.stride, self.sigma, self.min_area).items()}
