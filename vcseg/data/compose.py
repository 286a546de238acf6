"""Copy-paste compositing: multi-person videos with exact ground truth from single-person footage.

As in "Simple Copy-Paste" (Ghiasi et al., CVPR 2021), applied to video: a person is cut out of a
source video frame by frame, with their motion, and pasted into a base video's frames with a random
scale, offset and time shift. The RGB gets a soft edge (the hard mask blurred into an alpha);
the mask stays hard. Pasted persons are drawn in front of the base video's persons, one after the
other in depth order, so a later one overwrites the ids beneath it; the base persons keep their
ids wherever nothing covers them.

Time: output frame t shows the source frame t - time_shift. A source person whose frames run out
before the base video ends leaves the scene (no loop, no ping-pong: people coming and going is what
the competition's videos do); one whose source starts later than the base enters late.

Ids: base persons first (1..B, in order of their source ids), then pasted persons in depth order;
a person not visible in any output frame (covered or outside the frame throughout) is dropped and
the rest renumbered, so the ids of every output video are 1..N.

Three steps, each usable alone: `plan_clip` makes every random draw, `render_masks` draws the
ids, `render_frame` blends one frame's pixels. `compose_clip` runs them on arrays in memory (an
on-the-fly augmentation); `compose_dataset` runs them on files for `vcseg compose`.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from rich.progress import Progress
from scipy.ndimage import gaussian_filter

from vcseg.data.cache import resize_frame, resize_mask
from vcseg.data.staging import (check_out, checked_relative, install, make_staging,
                                 remove_orphan_staging)
from vcseg.errors import VcsegError
from vcseg.io.atomic import write_bytes_atomic, write_json_atomic
from vcseg.io.frames import read_frame
from vcseg.io.layouts import FRAMES_DIR, MASKS_DIR, VideoFiles, find_dataset
from vcseg.io.masks import MAX_ID, read_mask, write_mask

META_FILE = "compose_meta.json"
_GAUSS_TRUNCATE = 4.0  # scipy's default: the kernel reaches int(4 * sigma + 0.5) pixels


@dataclass(frozen=True)
class PasteParams:
    """How one person is pasted.

    scale_range: the source is first scaled so its short side matches the base's, then by a factor
        drawn uniformly from this range.
    feather_sigma: standard deviation (pixels) of the Gaussian that softens the RGB edge; 0 = hard.
    min_overlap: fraction of the shorter of base and source that must overlap in time.
    """

    scale_range: tuple[float, float] = (0.5, 1.0)
    feather_sigma: float = 1.5
    min_overlap: float = 0.5


@dataclass(frozen=True)
class Placement:
    """Where and when one pasted person lands in the output clip."""

    source: int  # index of the source clip in the paste lists
    source_id: int  # the person's id in the source masks
    new_id: int  # the person's id in the output masks
    scale: float  # factor applied to the source frames
    size: tuple[int, int]  # (height, width) of the scaled source frame
    offset: tuple[int, int]  # (dy, dx): output position of the scaled source frame's top-left pixel
    time_shift: int  # output frame showing source frame 0 (negative: the paste starts mid-source)
    frames: tuple[int, int]  # first and last output frame (inclusive) within the source's time span
    depth: int  # drawing order: 1 is drawn first; base persons lie beneath, at depth 0

    def source_frame(self, t: int) -> int | None:
        """The source frame shown at output frame t, None outside the paste's time span."""
        return t - self.time_shift if self.frames[0] <= t <= self.frames[1] else None


@dataclass(frozen=True)
class ClipPlan:
    """Every random choice of one composite: base id renumbering and the placements."""

    base_ids: dict[int, int]  # base video id -> output id
    placements: list[Placement]
    dropped: list[dict[str, Any]] = field(default_factory=list)  # persons visible in no frame


@dataclass(frozen=True)
class ComposedClip:
    frames: np.ndarray  # (T, H, W, 3) uint8
    masks: np.ndarray  # (T, H, W) uint8 ids 1..N
    plan: ClipPlan


# ---- planning: all the randomness -----------------------------------------------------------------

def present_ids(masks: np.ndarray) -> list[int]:
    """Sorted non-zero ids appearing in any frame of (T, H, W) masks."""
    counts = np.bincount(np.asarray(masks, dtype=np.uint8).ravel(), minlength=256)
    return [int(i) for i in np.flatnonzero(counts[1:]) + 1]


def _valid_shifts(base_len: int, presence: np.ndarray, min_overlap: float) -> np.ndarray:
    """Time shifts that overlap enough frames and show the person in at least one of them."""
    source_len = len(presence)
    need = max(1, math.ceil(min_overlap * min(base_len, source_len)))
    cumulative = np.concatenate([[0], np.cumsum(presence)])
    shifts = []
    for shift in range(need - source_len, base_len - need + 1):
        first, last = max(0, shift), min(base_len, shift + source_len) - 1
        if cumulative[last - shift + 1] - cumulative[first - shift] > 0:
            shifts.append(shift)
    return np.array(shifts, dtype=int)


def _axis_offset(rng: np.random.Generator, low: float, high: float, extent: int) -> int:
    """Offset along one axis keeping the scaled box [low, high) inside [0, extent) when it fits."""
    lo, hi = -math.floor(low), extent - math.ceil(high)
    if lo > hi:  # the box is longer than the frame: keep it overlapping, both ends outside
        lo, hi = hi, lo
    return int(rng.integers(lo, hi + 1))


def plan_placement(base_shape: tuple[int, int, int], person: np.ndarray, source: int,
                   source_id: int, rng: np.random.Generator, params: PasteParams) -> Placement | None:
    """Draw scale, time shift and offset for one person.

    base_shape: (T, H, W) of the base clip; person: (T_s, H_s, W_s) bool mask of the person in
    the source clip. None when the person appears in no source frame.
    """
    base_len, height, width = base_shape
    presence = person.reshape(len(person), -1).any(axis=1)  # T_s
    shifts = _valid_shifts(base_len, presence, params.min_overlap)
    if not shifts.size:
        return None
    source_h, source_w = person.shape[1:]
    scale = min(height, width) / min(source_h, source_w) * float(rng.uniform(*params.scale_range))
    size = (max(1, round(source_h * scale)), max(1, round(source_w * scale)))
    shift = int(rng.choice(shifts))
    first, last = max(0, shift), min(base_len, shift + len(person)) - 1

    # the union box of the person over the frames used, in scaled coordinates
    used = person[first - shift: last - shift + 1]
    rows, cols = np.flatnonzero(used.any(axis=(0, 2))), np.flatnonzero(used.any(axis=(0, 1)))
    sy, sx = size[0] / source_h, size[1] / source_w
    dy = _axis_offset(rng, rows[0] * sy, (rows[-1] + 1) * sy, height)
    dx = _axis_offset(rng, cols[0] * sx, (cols[-1] + 1) * sx, width)
    return Placement(source=source, source_id=source_id, new_id=0, scale=scale, size=size,
                     offset=(dy, dx), time_shift=shift, frames=(first, last), depth=0)


def plan_clip(base_masks: np.ndarray, paste_masks: Sequence[np.ndarray], rng: np.random.Generator,
              paste_ids: Sequence[int | None] | None = None,
              params: PasteParams = PasteParams()) -> ClipPlan:
    """Plan pasting one person of each source clip into the base clip.

    base_masks: (T, H, W) ids; paste_masks[k]: (T_k, H_k, W_k) ids. paste_ids[k] names the person
    of source k; None draws one of the ids present. Sources whose person cannot be placed are left
    out. Pasted persons are drawn in the order given (depth 1, 2, ...).
    """
    base_ids = {old: new for new, old in enumerate(present_ids(base_masks), start=1)}
    paste_ids = list(paste_ids) if paste_ids is not None else [None] * len(paste_masks)
    if len(paste_ids) != len(paste_masks):
        raise ValueError("paste_ids needs one entry per source clip")
    placements: list[Placement] = []
    for source, (masks, person_id) in enumerate(zip(paste_masks, paste_ids)):
        if person_id is None:
            ids = present_ids(masks)
            if not ids:
                continue
            person_id = int(rng.choice(ids))
        placement = plan_placement(base_masks.shape, masks == person_id, source, person_id, rng, params)
        if placement is None:
            continue
        new_id = len(base_ids) + len(placements) + 1
        if new_id > MAX_ID:
            raise VcsegError(f"more than {MAX_ID} persons in one composite; paste fewer persons")
        placements.append(dataclasses.replace(placement, new_id=new_id, depth=len(placements) + 1))
    return ClipPlan(base_ids=base_ids, placements=placements)


# ---- rendering: pure functions of the plan ---------------------------------------------------------

def _overlap(placement: Placement, height: int, width: int) -> tuple[slice, slice, slice, slice] | None:
    """(output rows, output cols, scaled-source rows, scaled-source cols) where the paste lands."""
    (dy, dx), (h, w) = placement.offset, placement.size
    y0, y1, x0, x1 = max(0, dy), min(height, dy + h), max(0, dx), min(width, dx + w)
    if y0 >= y1 or x0 >= x1:
        return None
    return slice(y0, y1), slice(x0, x1), slice(y0 - dy, y1 - dy), slice(x0 - dx, x1 - dx)


def _scaled_person(placement: Placement, source_mask: np.ndarray) -> np.ndarray:
    """(h, w) bool: the person in one source frame's (H_s, W_s) id mask, scaled (nearest)."""
    person = (source_mask == placement.source_id).astype(np.uint8)
    return resize_mask(person, placement.size).astype(bool)


def feather(mask: np.ndarray, sigma: float) -> np.ndarray:
    """(h, w) float32 alpha in [0, 1]: the hard mask blurred by a Gaussian of `sigma` pixels.

    Outside the mask counts as 0, so the blur is computed only on the mask's box plus the kernel's
    reach, with the same result as on the whole image.
    """
    alpha = np.zeros(mask.shape, dtype=np.float32)
    if sigma <= 0 or not mask.any():
        alpha[mask] = 1.0
        return alpha
    reach = int(_GAUSS_TRUNCATE * sigma + 0.5) + 1
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    y0, y1 = max(0, rows[0] - reach), min(mask.shape[0], rows[-1] + 1 + reach)
    x0, x1 = max(0, cols[0] - reach), min(mask.shape[1], cols[-1] + 1 + reach)
    alpha[y0:y1, x0:x1] = gaussian_filter(mask[y0:y1, x0:x1].astype(np.float32), sigma,
                                          mode="constant", truncate=_GAUSS_TRUNCATE)
    return np.clip(alpha, 0.0, 1.0, out=alpha)


def render_mask(base_mask: np.ndarray, plan: ClipPlan, t: int,
                source_mask: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """The (H, W) id mask of output frame t: base ids renumbered, then each paste in depth order.

    source_mask(k, s) gives source k's (H_k, W_k) id mask at frame s.
    """
    lookup = np.zeros(256, dtype=np.uint8)
    for old, new in plan.base_ids.items():
        lookup[old] = new
    out = lookup[base_mask]
    for placement in plan.placements:
        s = placement.source_frame(t)
        region = _overlap(placement, *out.shape)
        if s is None or region is None:
            continue
        rows, cols, src_rows, src_cols = region
        person = _scaled_person(placement, source_mask(placement.source, s))[src_rows, src_cols]
        out[rows, cols][person] = placement.new_id
    return out


def render_frame(base_frame: np.ndarray, plan: ClipPlan, t: int,
                 source_frame: Callable[[int, int], np.ndarray],
                 source_mask: Callable[[int, int], np.ndarray], feather_sigma: float) -> np.ndarray:
    """The (H, W, 3) uint8 pixels of output frame t: each paste alpha-blended over the base.

    Where the feathered alpha is 1 (the mask's interior) the output equals the scaled source pixels.
    """
    out = base_frame.astype(np.float32)  # H, W, 3
    for placement in plan.placements:
        s = placement.source_frame(t)
        region = _overlap(placement, *out.shape[:2])
        if s is None or region is None:
            continue
        rows, cols, src_rows, src_cols = region
        person = _scaled_person(placement, source_mask(placement.source, s))
        if not person[src_rows, src_cols].any():
            continue
        alpha = feather(person, feather_sigma)[src_rows, src_cols, None]  # h', w', 1
        pixels = resize_frame(source_frame(placement.source, s), placement.size)[src_rows, src_cols]
        below = out[rows, cols]
        out[rows, cols] = below + alpha * (pixels.astype(np.float32) - below)
    return np.rint(out).astype(np.uint8)


def compact_ids(plan: ClipPlan, visible: set[int]) -> tuple[ClipPlan, np.ndarray]:
    """Drop persons visible in no frame and renumber the rest 1..N, keeping their order.

    Returns the plan with final ids and a 256-entry lookup table old id -> new id.
    """
    old_ids = sorted(plan.base_ids.values()) + [p.new_id for p in plan.placements]
    kept = [i for i in old_ids if i in visible]
    lookup = np.zeros(256, dtype=np.uint8)
    lookup[kept] = np.arange(1, len(kept) + 1)
    dropped = [{"base_id": old, "reason": "not visible in any frame"}
               for old, new in plan.base_ids.items() if new not in visible]
    dropped += [{"source": p.source, "source_id": p.source_id, "depth": p.depth,
                 "reason": "not visible in any frame"}
                for p in plan.placements if p.new_id not in visible]
    base_ids = {old: int(lookup[new]) for old, new in plan.base_ids.items() if new in visible}
    placements = [dataclasses.replace(p, new_id=int(lookup[p.new_id]))
                  for p in plan.placements if p.new_id in visible]
    return ClipPlan(base_ids=base_ids, placements=placements, dropped=dropped), lookup


def render_masks(base_masks: np.ndarray, plan: ClipPlan,
                 source_mask: Callable[[int, int], np.ndarray]) -> tuple[np.ndarray, ClipPlan]:
    """All (T, H, W) output masks with final ids 1..N, and the plan with those ids."""
    masks = np.stack([render_mask(base_masks[t], plan, t, source_mask) for t in range(len(base_masks))])
    final_plan, lookup = compact_ids(plan, set(present_ids(masks)))
    return lookup[masks], final_plan


def compose_clip(base_frames: np.ndarray, base_masks: np.ndarray, paste_frames: Sequence[np.ndarray],
                 paste_masks: Sequence[np.ndarray], rng: np.random.Generator, *,
                 paste_ids: Sequence[int | None] | None = None,
                 params: PasteParams = PasteParams()) -> ComposedClip:
    """Paste one person of each source clip into the base clip, in memory.

    base_frames: (T, H, W, 3) uint8; base_masks: (T, H, W) ids; paste_frames[k]: (T_k, H_k, W_k, 3);
    paste_masks[k]: (T_k, H_k, W_k) ids. Returns frames, masks with ids 1..N and the final plan.
    """
    if base_frames.shape[:3] != base_masks.shape:
        raise ValueError(f"base frames {base_frames.shape} and masks {base_masks.shape} differ in size")
    for frames, masks in zip(paste_frames, paste_masks):
        if frames.shape[:3] != masks.shape:
            raise ValueError(f"paste frames {frames.shape} and masks {masks.shape} differ in size")
    plan = plan_clip(base_masks, paste_masks, rng, paste_ids, params)

    def source_mask(k: int, s: int) -> np.ndarray:
        return paste_masks[k][s]

    def source_frame(k: int, s: int) -> np.ndarray:
        return paste_frames[k][s]

    masks, plan = render_masks(base_masks, plan, source_mask)
    frames = np.stack([render_frame(base_frames[t], plan, t, source_frame, source_mask,
                                    params.feather_sigma) for t in range(len(base_frames))])
    return ComposedClip(frames=frames, masks=masks, plan=plan)


# ---- datasets on disk ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ComposeConfig:
    """What `vcseg compose` makes: how many videos, how many persons each, from which seed."""

    videos: int = 6
    people: tuple[int, int] = (2, 3)  # persons per output video, the base video's own included
    seed: int = 0
    overwrite: bool = False
    jpeg_quality: int = 95
    paste: PasteParams = PasteParams()
    exclude: tuple[str, ...] = ()  # source video names left out (a held-out split stays unseen)
    # Folders of videos whose frames are the scenes people are pasted into (their own masks, if
    # any, are ignored: what they show is background, no person); none: the sources are the bases.
    backgrounds: tuple[str, ...] = ()
    # Chance that each pasted person after the first is another copy of a person already pasted
    # into the same composite (its own time shift, scale and place): look-alike persons side by
    # side, as where one person is pasted twice. 0 draws nothing more from the generator: a seed
    # composes the same frames and masks as before the option (compose_meta.json records it).
    repeat: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.repeat <= 1.0:
            raise VcsegError(f"repeat {self.repeat}: give a chance from 0 to 1")


@dataclass(frozen=True)
class ComposeSummary:
    out: Path
    videos: list[str]
    frames: int
    persons: list[int]  # persons per output video


def parse_people(text: str) -> tuple[int, int]:
    """'2-3' -> (2, 3); '2' -> (2, 2). VcsegError for anything else."""
    parts = text.split("-")
    try:
        low, high = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (0, -1)
    except ValueError:
        low, high = 0, -1
    if not 1 <= low <= high <= MAX_ID:
        raise VcsegError(f"--people {text!r}: give MIN-MAX with 1 <= MIN <= MAX, e.g. 2-3")
    return low, high


@dataclass(frozen=True)
class _SourceVideo:
    root: int  # index into the sources (backgrounds follow the sources)
    files: VideoFiles
    stems: list[str]  # frames that have both a JPG and a mask (a background's: every frame)
    background: bool = False  # a scene only: no person of its own


def _background_videos(folders: Sequence[Path], first_root: int,
                       exclude: Sequence[str] = ()) -> tuple[list[_SourceVideo], set[str]]:
    """The scene videos of `folders` less `exclude`, and the names of all their videos (which
    --exclude may name)."""
    videos, names = [], set()
    for index, root in enumerate(folders):
        listed = find_dataset(root).videos
        names.update(video.name for video in listed)
        found = [video for video in listed if video.stems and video.name not in exclude]
        if not found:
            raise VcsegError(f"--backgrounds {root}: no video frames found; give a folder of videos "
                             "(JPEGImages/<video>/*.jpg or <video>/*.jpg)")
        videos += [_SourceVideo(first_root + index, video, list(video.stems), background=True) for video in found]
    return videos, names


def _annotated_videos(sources: Sequence[Path], exclude: Sequence[str] = (),
                      backgrounds: Sequence[Path] = (), background_names: set[str] = frozenset()) -> list[_SourceVideo]:
    videos = []
    found = set(background_names)  # --exclude may name scenes
    for index, root in enumerate(sources):
        for video in find_dataset(root).videos:
            found.add(video.name)
            stems = [stem for stem in video.stems if stem in video.masks]
            if stems and video.name not in exclude:
                videos.append(_SourceVideo(index, video, stems))
    unknown = sorted(set(exclude) - found)
    if unknown:  # a typo would silently leak a held-out video into the output
        raise VcsegError(f"--exclude {', '.join(unknown)}: no such video in "
                         f"{', '.join(map(str, [*sources, *backgrounds]))}")
    return videos


class _MaskStore:
    """The (T, H, W) masks of recently used videos (each source is read once per output)."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._masks: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()

    def get(self, video: _SourceVideo) -> np.ndarray:
        key = (video.root, video.files.name)
        if key not in self._masks and video.background:  # a scene: no person in any frame
            with Image.open(video.files.frames[video.stems[0]]) as image:
                width, height = image.size
            self._masks[key] = np.zeros((len(video.stems), height, width), np.uint8)
        if key not in self._masks:
            masks = [read_mask(video.files.masks[stem]) for stem in video.stems]
            if len({m.shape for m in masks}) > 1:
                raise VcsegError(f"{video.files.masks[video.stems[0]].parent}: masks differ in size "
                                 "within the video; re-export them at the frames' size")
            self._masks[key] = np.stack(masks)
            if len(self._masks) > self.capacity:
                self._masks.popitem(last=False)
        self._masks.move_to_end(key)
        return self._masks[key]


def _previous_files(out: Path) -> set[str]:
    """What the compose run that wrote `out` wrote there, as listed by its compose_meta.json."""
    meta_path = out / META_FILE
    try:
        written = json.loads(meta_path.read_text()).get("written")
    except (OSError, ValueError, AttributeError):
        written = None
    if not isinstance(written, list):  # unreadable, or written by a vcseg that did not list them
        raise VcsegError(f"{meta_path}: does not list the files compose wrote; remove them by hand "
                         "or choose another --out")
    return {checked_relative(str(rel), meta_path) for rel in written} | {META_FILE}


def _encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def compose_dataset(sources: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                    config: ComposeConfig = ComposeConfig(), *, progress: bool = True) -> ComposeSummary:
    """Write `config.videos` composites of the annotated videos under `sources` into `out`.

    Each output takes a base video (cycling through a seeded permutation of all annotated videos,
    or of the `config.backgrounds` videos, whose frames are then scenes with no person of their
    own) and pastes persons of other videos until it holds a number of persons drawn from
    `config.people`. Only frames that have a mask take part (for YouTube-VOS, every 5th frame).
    Writes OUT/JPEGImages/<video>/<stem>.jpg, OUT/Annotations/<video>/<stem>.png and
    OUT/compose_meta.json, which lists the files written. Output video i depends only on (seed, i)
    and the sources. With `config.overwrite`, only the files the previous compose_meta.json lists
    are replaced or removed: the user's files in `out` stay. Everything is rendered into a staging
    folder beside `out` first (see `vcseg.data.staging`).
    """
    sources = [Path(s) for s in sources]
    out = Path(out)
    low, high = config.people
    if not 1 <= low <= high:
        raise VcsegError(f"people range {low}-{high}: give MIN-MAX with 1 <= MIN <= MAX")
    backgrounds = [Path(b) for b in config.backgrounds]
    scenes, scene_names = _background_videos(backgrounds, len(sources), config.exclude)
    videos = _annotated_videos(sources, config.exclude, backgrounds, scene_names)
    if not videos:
        raise VcsegError(f"{', '.join(map(str, sources))}: no video with masks; compose needs "
                         "annotated videos (JPEGImages/<video>/*.jpg with Annotations/<video>/*.png)")
    scenes = scenes or videos
    order = np.random.default_rng(config.seed).permutation(len(scenes))
    bases = [scenes[order[i % len(scenes)]] for i in range(config.videos)]
    names = [f"cp{index:03d}-{base.files.name}" for index, base in enumerate(bases)]
    written = [f"{tree}/{name}/{stem}{suffix}" for name, base in zip(names, bases) for stem in base.stems
               for tree, suffix in ((FRAMES_DIR, ".jpg"), (MASKS_DIR, ".png"))]
    previous = check_out(out, "--out", config.overwrite, META_FILE, "vcseg compose", written + [META_FILE],
                         _previous_files)
    remove_orphan_staging(out)
    staging = make_staging(out)
    try:
        roots = sources + backgrounds
        meta_videos, persons = _write_composites(staging, bases, names, videos, roots, config, progress)
        write_json_atomic(staging / META_FILE, {
            "version": 1,
            "sources": [str(s) for s in sources],
            "backgrounds": list(config.backgrounds),
            "config": {"videos": config.videos, "people": list(config.people), "seed": config.seed,
                       "jpeg_quality": config.jpeg_quality, "exclude": list(config.exclude),
                       "repeat": config.repeat,
                       **_params_meta(config.paste)},
            "videos": meta_videos,
            "written": written,  # what a later --overwrite may replace or remove, nothing else
        })
        install(staging, out, written + [META_FILE], previous)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ComposeSummary(out=out, videos=names, frames=sum(len(base.stems) for base in bases),
                          persons=persons)


def _write_composites(folder: Path, bases: list[_SourceVideo], names: list[str], videos: list[_SourceVideo],
                      sources: list[Path], config: ComposeConfig,
                      progress: bool) -> tuple[list[dict[str, Any]], list[int]]:
    """Render and write every composite into `folder`; return their meta records and person counts."""
    low, high = config.people
    store = _MaskStore()
    meta_videos, persons = [], []
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("composing", total=sum(len(base.stems) for base in bases))
        for index, (base, name) in enumerate(zip(bases, names)):
            rng = np.random.default_rng([config.seed, index])
            base_masks = store.get(base)
            wanted = int(rng.integers(low, high + 1))
            pasted = max(0, wanted - len(present_ids(base_masks)))
            others = [v for v in videos if v is not base] or [base]
            picks = rng.choice(len(others), size=pasted, replace=pasted > len(others))
            if config.repeat > 0:
                for i in range(1, pasted):
                    if rng.random() < config.repeat:
                        picks[i] = picks[int(rng.integers(i))]
            chosen = [others[int(i)] for i in picks]
            paste_masks = [store.get(v) for v in chosen]
            plan = plan_clip(base_masks, paste_masks, rng, params=config.paste)

            def source_mask(k: int, s: int) -> np.ndarray:
                return paste_masks[k][s]

            masks, plan = render_masks(base_masks, plan, source_mask)
            frames_dir, masks_dir = folder / FRAMES_DIR / name, folder / MASKS_DIR / name

            def source_frame(k: int, s: int) -> np.ndarray:
                path = chosen[k].files.frames[chosen[k].stems[s]]
                frame = read_frame(path)
                if frame.shape[:2] != paste_masks[k].shape[1:]:
                    raise VcsegError(f"{path}: frame size differs from its mask's; "
                                     "re-export the mask at the frame's size")
                return frame

            for t, stem in enumerate(base.stems):
                base_frame = read_frame(base.files.frames[stem])
                if base_frame.shape[:2] != masks[t].shape:
                    raise VcsegError(f"{base.files.frames[stem]}: frame size differs from its mask's; "
                                     "re-export the mask at the frame's size")
                frame = render_frame(base_frame, plan, t, source_frame,
                                     source_mask, config.paste.feather_sigma)
                write_bytes_atomic(frames_dir / f"{stem}.jpg", _encode_jpeg(frame, config.jpeg_quality))
                write_mask(masks_dir / f"{stem}.png", masks[t])
                bar.advance(task)
            meta_videos.append(_video_meta(name, base, chosen, sources, plan, config.seed, index))
            persons.append(len(plan.base_ids) + len(plan.placements))
    return meta_videos, persons


def _params_meta(params: PasteParams) -> dict[str, Any]:
    return {"scale_range": list(params.scale_range), "feather_sigma": params.feather_sigma,
            "min_overlap": params.min_overlap, "time_end": "leave",
            "scale_reference": "source scaled to the base's short side, times scale_range"}


def _video_meta(name: str, base: _SourceVideo, chosen: list[_SourceVideo], sources: list[Path],
                plan: ClipPlan, seed: int, index: int) -> dict[str, Any]:
    persons = [{"id": new, "pasted": False, "source_root": str(sources[base.root]),
                "source_video": base.files.name, "source_id": old, "depth": 0}
               for old, new in sorted(plan.base_ids.items(), key=lambda item: item[1])]
    for p in plan.placements:
        source = chosen[p.source]
        persons.append({"id": p.new_id, "pasted": True, "source_root": str(sources[source.root]),
                        "source_video": source.files.name, "source_id": p.source_id,
                        "scale": p.scale, "size": list(p.size), "offset": list(p.offset),
                        "time_shift": p.time_shift, "frames": list(p.frames), "depth": p.depth,
                        "source_stems": [source.stems[p.frames[0] - p.time_shift],
                                         source.stems[p.frames[1] - p.time_shift]]})
    dropped = []
    for d in plan.dropped:
        if "source" in d:
            source = chosen[d["source"]]
            d = {"source_root": str(sources[source.root]), "source_video": source.files.name,
                 **{k: v for k, v in d.items() if k != "source"}}
        dropped.append(d)
    return {"name": name, "base_root": str(sources[base.root]), "base_video": base.files.name,
            "seed": [seed, index], "frames": len(base.stems),
            "stems": [base.stems[0], base.stems[-1]], "persons": persons, "dropped": dropped}
