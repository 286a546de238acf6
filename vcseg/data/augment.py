"""Training-clip augmentation: one random warp and colour change for the whole clip, plus jitter.

A clip goes through, in order:

1. geometry (`warps.py`, OpenCV): one clip-wide affine (`clip_affine`: flip, rotation, zoom,
   shear, shift) shared by every frame, composed with a per-frame affine (`frame_affine`) and, for
   static-image clips, a per-frame elastic field; then one crop window shared by every frame,
   drawn to hold a pixel of an object of frame 0 where there is one. Frames bilinear, masks
   nearest (ids survive); outside the source: `fill` colour and background 0.
2. colour (albumentations, seeded per clip): one clip-wide ColorJitter + ToGray applied with the
   same parameters to every frame (`images=` target), then a small per-frame ColorJitter
   (`frame_colour`) drawn for each frame on its own.
3. persons recoloured one by one (`instance_recolour`, off by default): each object id is, with
   that probability, given its own hue turn and saturation / brightness scale, the same in every
   frame of the clip. With few identities to learn from, a network otherwise learns their
   clothes' colours instead of people.
4. decoys (`background_recolour`, off by default): with that probability a clip gets 1-3
   background blobs (smooth random shapes, persons' pixels left out) recoloured the way persons
   are, so that colours no real scene has do not mark a person either.

For video clips the per-frame part is small jitter (a few pixels of shift, a degree or two, 2%
of zoom, 3% of brightness / contrast / saturation: real consecutive frames differ by about that);
for static clips (STM's pretraining) it is the whole point: every frame is a different random
affine + elastic warp of the same image. `VIDEO_AUGMENT`, `STATIC_AUGMENT` are the defaults;
`NO_AUGMENT` does nothing but the crop; `Augment.without_frame_jitter()` keeps the clip-wide part.

Reproducibility: every draw comes from the `np.random.Generator` passed in; albumentations gets
seeds drawn from it (`set_random_seed` before each call), so a clip is a function of that
generator's seed alone, in any process.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np

from vcseg.data.warps import AffineRange, apply_to_point, compose, crop_origin, elastic_field, random_affine, warp
from vcseg.io.frames import IMAGENET_MEAN_RGB


@dataclass(frozen=True)
class Augment:
    """What `augment_clip` draws. See the module docstring for the order.

    clip_affine: shared by all frames of a clip; frame_affine: drawn per frame (its `flip` is
    ignored: a mirror image between two frames is no motion a camera makes).
    elastic_magnitude: per-frame elastic displacement, standard deviation in crop pixels (0: none);
    elastic_cell: its smoothness, the spacing of its random nodes in pixels.
    colour: clip-wide ColorJitter (brightness, contrast, saturation, hue); grayscale: clip-wide
    probability of turning the clip grey; frame_colour: per-frame brightness / contrast /
    saturation jitter (0: none).
    """

    clip_affine: AffineRange = AffineRange()
    frame_affine: AffineRange = AffineRange()
    elastic_magnitude: float = 0.0
    elastic_cell: int = 48
    colour: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    grayscale: float = 0.0
    frame_colour: float = 0.0
    instance_recolour: float = 0.0
    background_recolour: float = 0.0
    fill: tuple[int, int, int] = IMAGENET_MEAN_RGB

    def without_frame_jitter(self) -> Augment:
        """The same clip-wide augmentation with nothing drawn per frame: identical input frames
        stay identical."""
        return dataclasses.replace(self, frame_affine=AffineRange(), elastic_magnitude=0.0, frame_colour=0.0)


NO_AUGMENT = Augment()

VIDEO_AUGMENT = Augment(
    clip_affine=AffineRange(rotate=10.0, scale=(0.7, 1.2), shear=5.0, translate=0.05, flip=0.5),
    frame_affine=AffineRange(rotate=2.0, scale=(0.98, 1.02), translate=0.01),
    colour=(0.2, 0.15, 0.15, 0.02), grayscale=0.05, frame_colour=0.03,
)

# STM pretraining: each frame a different affine + elastic warp of one image
STATIC_AUGMENT = Augment(
    clip_affine=AffineRange(scale=(0.8, 1.2), flip=0.5),
    frame_affine=AffineRange(rotate=20.0, scale=(0.9, 1.1), shear=10.0, translate=0.05),
    elastic_magnitude=4.0, elastic_cell=48,
    colour=(0.2, 0.15, 0.15, 0.02), grayscale=0.05, frame_colour=0.05,
)


class Photometric:
    """The colour part of an `Augment`, as albumentations pipelines built once and reseeded per use."""

    def __init__(self, augment: Augment) -> None:
        brightness, contrast, saturation, hue = augment.colour
        clip_steps = []
        if any(augment.colour):
            clip_steps.append(A.ColorJitter(brightness=brightness, contrast=contrast,
                                            saturation=saturation, hue=hue, p=1.0))
        if augment.grayscale > 0:
            clip_steps.append(A.ToGray(p=augment.grayscale))
        self.clip = A.Compose(clip_steps) if clip_steps else None
        jitter = augment.frame_colour
        self.frame = (A.Compose([A.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter,
                                               hue=0.0, p=1.0)]) if jitter > 0 else None)

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """frames (T, H, W, 3) uint8 -> same shape, recoloured. Seeds come from `rng` (always the
        same number of draws, so the geometry drawn after stays put when colour settings change)."""
        seeds = rng.integers(0, 2**32, size=1 + len(frames))
        if self.clip is not None:
            self.clip.set_random_seed(int(seeds[0]))
            frames = np.ascontiguousarray(self.clip(images=frames)["images"])
        if self.frame is not None:
            out = np.empty_like(frames)
            for t, frame in enumerate(frames):
                self.frame.set_random_seed(int(seeds[1 + t]))
                out[t] = self.frame(image=frame)["image"]
            frames = out
        return frames


RECOLOUR_SATURATION = (0.5, 1.5)  # scale ranges of `recolour_instances`
RECOLOUR_BRIGHTNESS = (0.7, 1.3)


def recolour_instances(frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
                       probability: float) -> np.ndarray:
    """frames (T, H, W, 3) uint8 RGB with masks (T, H, W) ids -> a copy where each id in 1..254
    (in id order), with `probability`, has its pixels' hue turned by a random angle and their
    saturation and brightness scaled (`RECOLOUR_SATURATION`, `RECOLOUR_BRIGHTNESS`), drawn once
    for the clip. Background and void (255) keep their colours. Draws 4 numbers per id present
    whatever happens, so later draws do not depend on the outcome."""
    ids = np.flatnonzero(np.bincount(masks.ravel(), minlength=256)[1:255]) + 1
    draws = rng.random((len(ids), 4))
    chosen = [(int(i), d) for i, d in zip(ids, draws) if d[0] < probability]
    if not chosen:
        return frames
    return _recolour_regions(frames, [[masks[t] == object_id for object_id, _ in chosen] for t in range(len(frames))],
                             [draw[1:] for _, draw in chosen])


def _recolour_regions(frames: np.ndarray, regions: list[list[np.ndarray]], draws: list[np.ndarray]) -> np.ndarray:
    """A copy of frames (T, H, W, 3) where region k of frame t (`regions[t][k]`, bool (H, W)) has
    its hue turned by 256 * draws[k][0] (of a full turn of 256) and its saturation and brightness
    scaled within `RECOLOUR_SATURATION`, `RECOLOUR_BRIGHTNESS` by draws[k][1], draws[k][2] (0..1)."""
    out = frames.copy()
    for t in range(len(frames)):
        hsv = cv2.cvtColor(frames[t], cv2.COLOR_RGB2HSV_FULL)  # hue over 0..255, a full turn
        changed = np.zeros(frames.shape[1:3], dtype=bool)
        for pixels, draw in zip(regions[t], draws):
            region = hsv[pixels].astype(np.float32)  # N, 3
            region[:, 0] = (region[:, 0] + 256 * draw[0]) % 256
            region[:, 1] *= RECOLOUR_SATURATION[0] + (RECOLOUR_SATURATION[1] - RECOLOUR_SATURATION[0]) * draw[1]
            region[:, 2] *= RECOLOUR_BRIGHTNESS[0] + (RECOLOUR_BRIGHTNESS[1] - RECOLOUR_BRIGHTNESS[0]) * draw[2]
            hsv[pixels] = np.clip(region, 0, 255).astype(np.uint8)
            changed |= pixels
        if changed.any():  # pixels of other ids go through no HSV round trip
            out[t][changed] = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB_FULL)[changed]
    return out


DECOYS = (1, 3)  # blobs a clip with decoys gets (`recolour_decoys`)
DECOY_AREA = (0.03, 0.15)  # share of the frame each blob covers, before persons are left out
DECOY_GRID = 7  # a blob is thresholded smooth noise drawn on a grid of about this many cells a side


def recolour_decoys(frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator,
                    probability: float) -> np.ndarray:
    """frames (T, H, W, 3) uint8 RGB with masks (T, H, W) ids -> with `probability`, a copy where
    1-3 background blobs are recoloured as `recolour_instances` recolours a person (their own draw
    each, the same blob and colour in every frame of the clip); else frames as given. A blob is
    smooth random noise above its (1 - area) quantile, area drawn from `DECOY_AREA`; pixels of any
    id (persons, void) are left out. Draws the same numbers whatever happens."""
    height, width = frames.shape[1:3]
    grid = (max(2, round(DECOY_GRID * height / max(height, width))), max(2, round(DECOY_GRID * width / max(height, width))))
    chosen = rng.random() < probability
    count = int(rng.integers(DECOYS[0], DECOYS[1] + 1))
    noise = rng.standard_normal((DECOYS[1], *grid)).astype(np.float32)
    areas = rng.uniform(*DECOY_AREA, size=DECOYS[1])
    draws = rng.random((DECOYS[1], 3))
    if not chosen:
        return frames
    blobs = []
    for k in range(count):
        smooth = cv2.resize(noise[k], (width, height), interpolation=cv2.INTER_CUBIC)
        blobs.append(smooth > np.quantile(smooth, 1.0 - areas[k]))
    background = masks == 0
    return _recolour_regions(frames, [[blob & background[t] for blob in blobs] for t in range(len(frames))],
                             list(draws[:count]))


def object_point(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float] | None:
    """(x, y) of a random object pixel of an (H, W) id mask, or None if it is empty."""
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return None
    pick = int(rng.integers(len(ys)))
    return float(xs[pick]), float(ys[pick])


def augment_clip(frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator, augment: Augment,
                 crop_hw: tuple[int, int], photometric: Photometric | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Warp, crop and recolour a clip: frames (T, H, W, 3) uint8 and masks (T, H, W) uint8 ids ->
    (T, h, w, 3) uint8 and (T, h, w) uint8 with (h, w) = crop_hw. Ids are kept, never blended.

    The crop window holds, where it can, a random object pixel of frame 0 after its warp.
    """
    length, height, width = masks.shape
    base = random_affine(rng, (height, width), augment.clip_affine)
    matrices = [compose(random_affine(rng, (height, width), augment.frame_affine, flip=False), base)
                for _ in range(length)]
    fields = [elastic_field(rng, crop_hw, augment.elastic_magnitude, augment.elastic_cell)
              if augment.elastic_magnitude > 0 else None for _ in range(length)]
    point = object_point(masks[0], rng)
    if point is not None:
        point = apply_to_point(matrices[0], point)
    origin = crop_origin(rng, (height, width), crop_hw, point)
    out_frames = np.empty((length, *crop_hw, 3), dtype=np.uint8)
    out_masks = np.empty((length, *crop_hw), dtype=np.uint8)
    for t in range(length):
        out_frames[t], out_masks[t] = warp(frames[t], masks[t], matrices[t], origin, crop_hw,
                                           fields[t], augment.fill)
    if photometric is not None:
        out_frames = photometric(out_frames, rng)
    if augment.instance_recolour > 0:
        out_frames = recolour_instances(out_frames, out_masks, rng, augment.instance_recolour)
    if augment.background_recolour > 0:
        out_frames = recolour_decoys(out_frames, out_masks, rng, augment.background_recolour)
    return out_frames, out_masks
