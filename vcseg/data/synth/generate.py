"""Planning and rendering synthetic videos, and writing them in the competition layout.

`plan_video` draws everything random about a video from one numpy Generator seeded with
(seed, video index); `iter_frames` renders its frames one by one (painter's order by depth: nearer
people are drawn later, so their id wins in the mask); `render_video` keeps a whole video in memory;
`synthesize` writes a dataset: OUT/JPEGImages/<video>/00000.jpg, OUT/Annotations/<video>/00000.png
and OUT/synth_meta.json, built in a staging folder whose files move into OUT only when complete.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from vcseg.data.staging import (check_out, checked_relative, install, make_staging,
                                 remove_orphan_staging)
from vcseg.data.synth.config import CROWD_PEOPLE, SynthConfig
from vcseg.data.synth.figure import Appearance, colourize, figure_shapes, rasterize, sample_appearance
from vcseg.data.synth.motion import ROLES, Motion, plan_motion
from vcseg.data.synth.scene import (Camera, Ground, Occluder, background_files, canvas_size, image_background,
                                    procedural_background, sample_camera, sample_ground, sample_occluders)
from vcseg.errors import VcsegError
from vcseg.io.atomic import write_bytes_atomic, write_json_atomic
from vcseg.io.masks import encode_mask_png

GENERATOR_VERSION = "1.0"
META_NAME = "synth_meta.json"  # not meta.json: find_dataset reads ROOT/meta.json as YouTube-VOS
FRAMES_DIR, MASKS_DIR = "JPEGImages", "Annotations"
_ROLE_WEIGHTS = (0.35, 0.12, 0.08, 0.17, 0.13, 0.15)  # in ROLES order
_CROWD_ROLE_WEIGHTS = (0.4, 0.1, 0.05, 0.25, 0.15, 0.05)


@dataclass(frozen=True)
class Person:
    id: int
    appearance: Appearance
    motion: Motion


@dataclass(frozen=True)
class VideoPlan:
    """Everything random about one video, drawn before any pixel is rendered."""

    name: str
    index: int
    frame_hw: tuple[int, int]
    frames: int
    ground: Ground
    camera: Camera
    camera_kind: str
    background: Image.Image  # the canvas (larger than a frame), already tinted
    scene: str
    people: tuple[Person, ...]
    occluders: tuple[Occluder, ...]
    jpeg_quality: int
    tint: np.ndarray  # (3,) white balance applied to everything
    light: float  # side lighting strength (sign: which side)
    crowd: bool


@dataclass(frozen=True)
class Layer:
    """A thing drawn in a frame, before anything nearer covered it (kept for tests)."""

    id: int  # person id; 0 for an occluder
    depth: float
    silhouette: np.ndarray  # (H, W) bool
    object: np.ndarray  # (H, W) bool: the carried object's pixels (empty for no object)


@dataclass
class RenderedFrame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) uint8 person ids
    object_ids: np.ndarray  # (H, W) uint8: the carrier's id on the visible pixels of carried objects
    depth_order: list[int]  # person ids, farthest first
    boxes: dict[int, tuple[list[int], int] | None]  # id -> ([x0, y0, x1, y1] exclusive ends, area)
    layers: list[Layer] | None = None


@dataclass
class RenderedVideo:
    """A video in memory: frames, id masks, object masks and the meta that synth_meta.json records."""

    name: str
    frames: list[np.ndarray] = field(default_factory=list)  # (H, W, 3) uint8
    masks: list[np.ndarray] = field(default_factory=list)  # (H, W) uint8
    object_ids: list[np.ndarray] = field(default_factory=list)  # (H, W) uint8
    layers: list[list[Layer]] | None = None
    meta: dict = field(default_factory=dict)


def video_name(index: int, prefix: str = "synth") -> str:
    return f"{prefix}{index:04d}"


def frame_stem(index: int) -> str:
    return f"{index:05d}"


def video_rng(seed: int, index: int) -> np.random.Generator:
    """The one generator of a video: independent of every other video and of the global state."""
    return np.random.default_rng([seed, index])


def plan_video(config: SynthConfig, index: int) -> VideoPlan:
    """Draw the scene, camera and people of video `index`; every random number comes from one rng."""
    rng = video_rng(config.seed, index)
    frame_hw = (config.height, config.width)
    ground = sample_ground(rng, frame_hw)
    camera, camera_kind = sample_camera(rng, config.frames, frame_hw)
    if config.backgrounds is not None:
        files = background_files(Path(config.backgrounds))
        chosen = files[int(rng.integers(len(files)))]
        canvas, scene = image_background(rng, chosen, frame_hw), f"image:{chosen.name}"
    else:
        canvas, scene = procedural_background(rng, frame_hw, ground)
    tint = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.07, 0.07, size=3)
    background = Image.fromarray(np.clip(canvas * tint, 0, 255).astype(np.uint8))

    crowd = config.is_crowd_video(index)
    low, high = CROWD_PEOPLE if crowd else (config.people_min, config.people_max)
    count = int(rng.integers(low, high + 1))
    canvas_h = canvas_size(frame_hw)[0]
    near = max(2.5, ground.depth_of_row(canvas_h * 0.92))
    # Salient people: most stand within a few metres, as in portrait videos; crowds spread deeper.
    far = min(16.0, near * float(rng.uniform(1.8, 2.8)) * (1.4 if crowd else 1.0))
    weights = np.asarray(_CROWD_ROLE_WEIGHTS if crowd else _ROLE_WEIGHTS)
    people = []
    for person_id in range(1, count + 1):
        appearance = sample_appearance(rng)
        role = ROLES[int(rng.choice(len(ROLES), p=weights / weights.sum()))]
        motion = plan_motion(rng, role, appearance, config.frames, ground, camera, (near, far))
        people.append(Person(person_id, appearance, motion))
    occluders = sample_occluders(rng, ground, camera, near)
    return VideoPlan(name=video_name(index, config.name_prefix), index=index, frame_hw=frame_hw,
                     frames=config.frames, ground=ground, camera=camera, camera_kind=camera_kind, background=background,
                     scene=scene, people=tuple(people), occluders=tuple(occluders),
                     jpeg_quality=int(rng.integers(70, 96)), tint=tint.astype(np.float32),
                     light=float(rng.choice((-1, 1)) * rng.uniform(0.05, 0.25)), crowd=crowd)


def _shadow(image: np.ndarray, foot: tuple[float, float], rx: float, ry: float) -> None:
    """Darken an elliptic patch of ground under the feet, in place (frame only, not the mask)."""
    height, width = image.shape[:2]
    x0, x1 = max(0, int(foot[0] - rx)), min(width, int(math.ceil(foot[0] + rx)) + 1)
    y0, y1 = max(0, int(foot[1] - ry)), min(height, int(math.ceil(foot[1] + ry)) + 1)
    if x1 <= x0 or y1 <= y0 or rx < 0.5 or ry < 0.5:
        return
    dx = ((np.arange(x0, x1, dtype=np.float32) - foot[0]) / rx)[None, :]
    dy = ((np.arange(y0, y1, dtype=np.float32) - foot[1]) / ry)[:, None]
    image[y0:y1, x0:x1] *= (1.0 - 0.35 * np.clip(1.0 - dx * dx - dy * dy, 0.0, 1.0))[..., None]


def _occluder_raster(occluder: Occluder, plan: VideoPlan, index: int) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """A pillar's crop in frame `index`: (x0, y0, rgb (h, w, 3), inside (h, w) bool), or None."""
    height, width = plan.frame_hw
    foot = plan.camera.to_frame(index, *plan.ground.foot_point(occluder.x, occluder.depth))
    half = occluder.width_m * plan.ground.scale(occluder.depth) * plan.camera.zoom(index) / 2
    x0, x1 = max(0, int(round(foot[0] - half))), min(width, int(round(foot[0] + half)))
    y1 = min(height, int(round(foot[1])))
    if x1 <= x0 or y1 <= 0:
        return None
    across = (np.arange(x0, x1, dtype=np.float32) + 0.5 - foot[0]) / max(half, 1e-6)  # -1..1
    shade = 0.65 + 0.45 * np.sqrt(np.clip(1.0 - across * across, 0.0, 1.0)) + plan.light * across
    rgb = np.asarray(occluder.colour, np.float32) * plan.tint * shade[None, :, None]
    rgb = np.broadcast_to(rgb, (y1, x1 - x0, 3))
    return x0, 0, rgb, np.ones((y1, x1 - x0), bool)


def render_frame(plan: VideoPlan, index: int, keep_layers: bool = False) -> RenderedFrame:
    """Render frame `index` of a planned video: background, shadows, then people and occluders far to near."""
    height, width = plan.frame_hw
    window = tuple(float(v) for v in plan.camera.windows[index])
    image = np.asarray(plan.background.resize((width, height), Image.BILINEAR, box=window), np.float32).copy()
    mask = np.zeros((height, width), np.uint8)
    object_ids = np.zeros((height, width), np.uint8)
    zoom = plan.camera.zoom(index)

    placed = []  # (depth, kind order, id, payload)
    for person in plan.people:
        depth = float(person.motion.depths[index])
        foot = plan.camera.to_frame(index, *plan.ground.foot_point(float(person.motion.xs[index]), depth))
        scale = plan.ground.scale(depth) * zoom
        _shadow(image, foot, 0.3 * scale, 0.06 * scale)
        placed.append((depth, 1, person.id, (person, foot, scale)))
    for occluder in plan.occluders:
        placed.append((occluder.depth, 0, 0, occluder))
    placed.sort(key=lambda item: (-item[0], item[1], item[2]))  # far first; ties broken by kind, then id

    layers: list[Layer] | None = [] if keep_layers else None
    crops: dict[int, tuple[int, int, int, int]] = {}
    for depth, _, person_id, payload in placed:
        if person_id == 0:
            drawn = _occluder_raster(payload, plan, index)
            if drawn is None:
                continue
            x0, y0, rgb, inside = drawn
            alpha = inside.astype(np.float32)
            object_region = None
        else:
            person, foot, scale = payload
            raster = rasterize(figure_shapes(person.appearance, person.motion.poses[index], foot, scale),
                               plan.frame_hw)
            if raster is None:
                continue
            x0, y0 = raster.x0, raster.y0
            rgb, alpha = colourize(raster, person.appearance, foot, scale, light=plan.light, tint=plan.tint)
            inside = raster.codes > 0
            object_region = raster.object_mask()
            crops[person_id] = (x0, y0, x0 + inside.shape[1], y0 + inside.shape[0])
        h, w = inside.shape
        region = image[y0:y0 + h, x0:x0 + w]
        region += (rgb - region) * alpha[..., None]
        mask[y0:y0 + h, x0:x0 + w][inside] = person_id
        objects = object_ids[y0:y0 + h, x0:x0 + w]
        objects[inside] = 0
        if object_region is not None:
            objects[object_region] = person_id
        if layers is not None:
            silhouette = np.zeros((height, width), bool)
            silhouette[y0:y0 + h, x0:x0 + w] = inside
            carried = np.zeros((height, width), bool)
            if object_region is not None:
                carried[y0:y0 + h, x0:x0 + w] = object_region
            layers.append(Layer(person_id, depth, silhouette, carried))

    boxes: dict[int, tuple[list[int], int] | None] = {}
    for person in plan.people:
        boxes[person.id] = None
        if person.id in crops:
            x0, y0, x1, y1 = crops[person.id]
            mine = mask[y0:y1, x0:x1] == person.id
            if mine.any():
                cols, rows = np.flatnonzero(mine.any(axis=0)), np.flatnonzero(mine.any(axis=1))
                boxes[person.id] = ([x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1,
                                     y0 + int(rows[-1]) + 1], int(mine.sum()))
    order = [item[2] for item in placed if item[2] != 0]
    np.add(image, 0.5, out=image)  # round, not truncate, when casting
    np.clip(image, 0, 255, out=image)
    return RenderedFrame(image=image.astype(np.uint8), mask=mask,
                         object_ids=object_ids, depth_order=order, boxes=boxes, layers=layers)


class _MetaCollector:
    """Builds a video's meta record frame by frame."""

    def __init__(self, plan: VideoPlan, config: SynthConfig):
        self.plan = plan
        self.record = {
            "name": plan.name, "video_index": plan.index, "seed": config.seed,
            "generator_version": GENERATOR_VERSION, "height": plan.frame_hw[0], "width": plan.frame_hw[1],
            "frames": plan.frames, "jpeg_quality": plan.jpeg_quality, "scene": plan.scene,
            "camera": plan.camera_kind, "crowd": plan.crowd, "masks_written": not config.frames_only,
            "occluders": [o.to_json() for o in plan.occluders], "depth_order": [],
            "people": [{"id": p.id, **p.motion.to_json(), **p.appearance.to_json(),
                        "visible": [], "bbox": [], "area": []} for p in plan.people],
        }
        self.by_id = {p["id"]: p for p in self.record["people"]}

    def add(self, frame: RenderedFrame) -> None:
        self.record["depth_order"].append(frame.depth_order)
        for person_id, box in frame.boxes.items():
            entry = self.by_id[person_id]
            entry["visible"].append(box is not None)
            entry["bbox"].append(box[0] if box else None)
            entry["area"].append(box[1] if box else 0)


def iter_frames(plan: VideoPlan, keep_layers: bool = False) -> Iterator[RenderedFrame]:
    for index in range(plan.frames):
        yield render_frame(plan, index, keep_layers)


def render_video(config: SynthConfig, index: int, keep_layers: bool = False) -> RenderedVideo:
    """Video `index` of `config` in memory (the same pixels `synthesize` writes, before JPEG)."""
    plan = plan_video(config, index)
    collector = _MetaCollector(plan, config)
    video = RenderedVideo(name=plan.name, layers=[] if keep_layers else None)
    for frame in iter_frames(plan, keep_layers):
        collector.add(frame)
        video.frames.append(frame.image)
        video.masks.append(frame.mask)
        video.object_ids.append(frame.object_ids)
        if video.layers is not None:
            video.layers.append(frame.layers or [])
    video.meta = collector.record
    return video


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def written_files(videos: dict[str, tuple[int, bool]]) -> list[str]:
    """The relative paths a synth output holds, the meta last: `videos` maps a video's name to
    (frames, masks written)."""
    files = []
    for name, (frames, masks) in videos.items():
        for index in range(frames):
            files.append(f"{FRAMES_DIR}/{name}/{frame_stem(index)}.jpg")
            if masks:
                files.append(f"{MASKS_DIR}/{name}/{frame_stem(index)}.png")
    return files + [META_NAME]


def _planned_files(config: SynthConfig) -> list[str]:
    return written_files({video_name(i, config.name_prefix): (config.frames, not config.frames_only)
                          for i in range(config.videos)})


def _previous_files(out: Path) -> set[str]:
    """What the synth run that wrote `out` wrote there, as listed by its synth_meta.json."""
    meta_path = out / META_NAME
    try:
        videos = json.loads(meta_path.read_text())["videos"]
        listed = {str(name): (int(video["frames"]), bool(video.get("masks_written", True)))
                  for name, video in videos.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise VcsegError(f"{meta_path}: unreadable ({error}); cannot tell which files synth wrote, "
                         "so remove the folder by hand or choose another folder") from None
    return {checked_relative(rel, meta_path) for rel in written_files(listed)}


def synthesize(out: str | os.PathLike[str], config: SynthConfig, *, overwrite: bool = False,
               progress: Callable[[int, int], None] | None = None) -> dict:
    """Write the dataset described by `config` to `out` and return its meta (as in synth_meta.json).

    Refuses a non-empty `out` unless `overwrite`, and then only a previous synth output; even then
    only the files the previous synth_meta.json lists are replaced or removed, so files of the
    user's in `out` stay. Everything is rendered into a staging folder beside `out` first, so an
    interrupted run leaves `out` as it was (see `vcseg.data.staging`). `progress(done, total)` is
    called after every frame.
    """
    out = Path(out)
    previous = check_out(out, "OUT", overwrite, META_NAME, "vcseg synth", _planned_files(config), _previous_files)
    if config.backgrounds is not None:
        background_files(Path(config.backgrounds))  # fail before any work if the folder is unusable
    remove_orphan_staging(out)
    staging = make_staging(out)
    total, done = config.videos * config.frames, 0
    meta = {"generator": "vcseg synth", "generator_version": GENERATOR_VERSION, "config": config.to_json(),
            "videos": {}}
    try:
        for index in range(config.videos):
            plan = plan_video(config, index)
            collector = _MetaCollector(plan, config)
            for frame_index, frame in enumerate(iter_frames(plan)):
                collector.add(frame)
                stem = frame_stem(frame_index)
                write_bytes_atomic(staging / FRAMES_DIR / plan.name / f"{stem}.jpg",
                                   encode_jpeg(frame.image, plan.jpeg_quality))
                if not config.frames_only:
                    write_bytes_atomic(staging / MASKS_DIR / plan.name / f"{stem}.png", encode_mask_png(frame.mask))
                done += 1
                if progress is not None:
                    progress(done, total)
            meta["videos"][plan.name] = collector.record
        write_json_atomic(staging / META_NAME, meta)
        install(staging, out, _planned_files(config), previous)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return meta
