"""Where the people stand: the ground plane, the background canvas, the camera, foreground occluders.

World and canvas share one coordinate system: the canvas is a still image larger than the frame
(canvas pixels), the ground is a plane seen by a pinhole camera, and each frame is a window of the
canvas (the camera pans and zooms by moving and shrinking the window). A person at lateral
position X and depth d (metres) stands on canvas point `Ground.foot_point(X, d)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from vcseg.errors import VcsegError

CANVAS_MARGIN = (1.25, 1.35)  # canvas size / frame size (height, width): room to pan and zoom
MAX_ZOOM = 1.2
BACKGROUND_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SCENE_KINDS = ("street", "indoor", "park")


@dataclass(frozen=True)
class Ground:
    """The ground plane in canvas pixels: horizon row, focal length, camera height."""

    horizon_y: float
    focal: float  # canvas pixels per metre at 1 m depth
    camera_height: float  # metres
    centre_x: float

    def scale(self, depth: float) -> float:
        """Canvas pixels per metre at `depth`."""
        return self.focal / depth

    def foot_point(self, x: float, depth: float) -> tuple[float, float]:
        return self.centre_x + self.focal * x / depth, self.horizon_y + self.focal * self.camera_height / depth

    def lateral(self, canvas_x: float, depth: float) -> float:
        """The X (metres) at `depth` that projects to column `canvas_x`."""
        return (canvas_x - self.centre_x) * depth / self.focal

    def depth_of_row(self, canvas_y: float) -> float:
        """The depth whose ground point lies on row `canvas_y` (below the horizon)."""
        return self.focal * self.camera_height / max(canvas_y - self.horizon_y, 1e-6)


@dataclass(frozen=True)
class Camera:
    """The canvas window seen by each frame: `windows[i] = (x0, y0, x1, y1)` in canvas pixels."""

    windows: np.ndarray  # (T, 4) float64
    frame_hw: tuple[int, int]

    def zoom(self, index: int) -> float:
        """Frame pixels per canvas pixel at frame `index`."""
        x0, _, x1, _ = self.windows[index]
        return self.frame_hw[1] / (x1 - x0)

    def to_frame(self, index: int, x: float, y: float) -> tuple[float, float]:
        x0, y0, _, _ = self.windows[index]
        zoom = self.zoom(index)
        return (x - x0) * zoom, (y - y0) * zoom

    def visible_lateral(self, index: int, ground: Ground, depth: float) -> tuple[float, float]:
        """The X range (metres) at `depth` inside frame `index`."""
        x0, _, x1, _ = self.windows[index]
        return ground.lateral(x0, depth), ground.lateral(x1, depth)


@dataclass(frozen=True)
class Occluder:
    """A pillar, post or trunk standing on the ground in front of some people (mask id 0)."""

    x: float  # metres
    depth: float
    width_m: float
    colour: tuple[int, int, int]

    def to_json(self) -> dict:
        return {"x_m": round(self.x, 3), "depth_m": round(self.depth, 3), "width_m": round(self.width_m, 3),
                "colour": list(self.colour)}


def canvas_size(frame_hw: tuple[int, int]) -> tuple[int, int]:
    return math.ceil(frame_hw[0] * CANVAS_MARGIN[0]), math.ceil(frame_hw[1] * CANVAS_MARGIN[1])


def sample_ground(rng: np.random.Generator, frame_hw: tuple[int, int]) -> Ground:
    canvas_h, canvas_w = canvas_size(frame_hw)
    return Ground(horizon_y=canvas_h * float(rng.uniform(0.3, 0.42)),
                  focal=frame_hw[0] * float(rng.uniform(1.3, 1.6)),
                  camera_height=float(rng.uniform(1.3, 1.7)), centre_x=canvas_w / 2)


def sample_camera(rng: np.random.Generator, frames: int, frame_hw: tuple[int, int]) -> tuple[Camera, str]:
    """A smooth pan and/or zoom with a little hand shake; returns the camera and its kind."""
    canvas_h, canvas_w = canvas_size(frame_hw)
    height, width = frame_hw
    kind = ("static", "pan", "zoom", "pan+zoom")[int(rng.integers(4))]
    zoom_a, zoom_b = 1.0 + float(rng.uniform(0, 0.08)), 1.0 + float(rng.uniform(0, 0.08))
    if "zoom" in kind:
        zoom_b = 1.0 + float(rng.uniform(0.1, MAX_ZOOM - 1.0))
        if rng.random() < 0.5:
            zoom_a, zoom_b = zoom_b, zoom_a
    else:
        zoom_b = zoom_a
    centre_a = np.array([rng.uniform(0.4, 0.6), rng.uniform(0.45, 0.6)])  # fraction of canvas (x, y)
    centre_b = centre_a.copy()
    if "pan" in kind:
        centre_b[0] = np.clip(centre_a[0] + rng.choice((-1, 1)) * rng.uniform(0.08, 0.2), 0.0, 1.0)
    times = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    ease = times * times * (3 - 2 * times)  # smoothstep: the camera starts and stops gently
    shake = np.cumsum(rng.normal(0.0, 0.0015, size=(frames, 2)), axis=0)  # random walk, frame fraction
    shake -= shake.mean(axis=0)
    windows = np.empty((frames, 4))
    for i in range(frames):
        zoom = zoom_a + (zoom_b - zoom_a) * ease[i]
        win_w, win_h = width / zoom, height / zoom
        cx = (centre_a[0] + (centre_b[0] - centre_a[0]) * ease[i]) * canvas_w + shake[i, 0] * width
        cy = centre_a[1] * canvas_h + shake[i, 1] * height
        x0 = float(np.clip(cx - win_w / 2, 0, canvas_w - win_w))
        y0 = float(np.clip(cy - win_h / 2, 0, canvas_h - win_h))
        windows[i] = (x0, y0, x0 + win_w, y0 + win_h)
    return Camera(windows, frame_hw), kind


# ---- backgrounds ------------------------------------------------------------------------------------


def value_noise(rng: np.random.Generator, shape: tuple[int, int], cell: int) -> np.ndarray:
    """Smooth noise in [0, 1], `(h, w)` float32: random values on a coarse grid, upsampled."""
    h, w = shape
    coarse = rng.random((h // cell + 2, w // cell + 2)).astype(np.float32)
    image = Image.fromarray(coarse, mode="F").resize((w, h), Image.BICUBIC)
    return np.clip(np.asarray(image), 0.0, 1.0)


def _colour(rng: np.random.Generator, low: int, high: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, size=3))  # type: ignore[return-value]


def _grey(rng: np.random.Generator, low: int, high: int, spread: int) -> tuple[int, int, int]:
    """A greyish colour: one level with a small per-channel tint (pavement, overcast sky)."""
    level = int(rng.integers(low, high))
    offsets = rng.integers(-spread, spread + 1, size=3)
    return tuple(int(np.clip(level + d, 0, 255)) for d in offsets)  # type: ignore[return-value]


def _gradient(top: tuple, bottom: tuple, rows: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, max(rows, 1), dtype=np.float32)[:, None]
    return (1 - t) * np.asarray(top, np.float32) + t * np.asarray(bottom, np.float32)  # (rows, 3)


def procedural_background(rng: np.random.Generator, frame_hw: tuple[int, int],
                          ground: Ground) -> tuple[np.ndarray, str]:
    """A textured scene on the whole canvas, `(Hc, Wc, 3)` uint8, and its kind."""
    canvas_h, canvas_w = canvas_size(frame_hw)
    kind = SCENE_KINDS[int(rng.integers(len(SCENE_KINDS)))]
    horizon = int(round(ground.horizon_y))
    image = Image.new("RGB", (canvas_w, canvas_h))
    canvas = np.zeros((canvas_h, canvas_w, 3), np.float32)

    if kind == "indoor":
        wall_depth = float(rng.uniform(9, 16))
        floor_row = int(ground.foot_point(0, wall_depth)[1])
        wall = np.asarray(_colour(rng, 90, 235), np.float32)
        canvas[:floor_row] = wall
        if rng.random() < 0.5:  # wallpaper stripes
            period = int(rng.integers(8, 40))
            stripes = ((np.arange(canvas_w) // period) % 2).astype(np.float32)[None, :, None]
            canvas[:floor_row] *= 1 - 0.08 * stripes
        floor_a, floor_b = _colour(rng, 60, 200), _colour(rng, 40, 160)
        canvas[floor_row:] = _gradient(floor_a, floor_b, canvas_h - floor_row)[:, None, :]
    else:
        sky_top = (int(rng.integers(70, 150)), int(rng.integers(120, 190)), int(rng.integers(190, 256)))
        sky = _gradient(sky_top, _grey(rng, 190, 250, 12), horizon)
        canvas[:horizon] = sky[:, None, :]
        clouds = value_noise(rng, (max(horizon, 1), canvas_w), max(8, canvas_w // 12))
        canvas[:horizon] += 40 * (clouds[..., None] - 0.5)
        ground_top = (80, 110, 60) if kind == "park" else _grey(rng, 100, 170, 15)
        ground_low = (50, 90, 40) if kind == "park" else _grey(rng, 60, 130, 15)
        canvas[horizon:] = _gradient(ground_top, ground_low, canvas_h - horizon)[:, None, :]
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)

    if kind == "street":
        x = -float(rng.uniform(0, 60))
        while x < canvas_w:  # a row of buildings on the horizon, with window grids
            bw = float(rng.uniform(0.08, 0.25)) * canvas_w
            top = horizon - float(rng.uniform(0.1, 0.35)) * canvas_h
            facade = _colour(rng, 70, 220)
            base = ground.foot_point(0, 25.0)[1]
            draw.rectangle((x, top, x + bw, base), fill=facade)
            window = tuple(int(c * 0.55) for c in facade)
            step = max(6.0, bw / float(rng.integers(3, 7)))
            for wy in np.arange(top + step * 0.4, base - step, step):
                for wx in np.arange(x + step * 0.3, x + bw - step * 0.5, step):
                    draw.rectangle((wx, wy, wx + step * 0.45, wy + step * 0.55), fill=window)
            x += bw + float(rng.uniform(0, 0.03)) * canvas_w
    elif kind == "park":
        for _ in range(int(rng.integers(4, 10))):  # trees far away, on the horizon line
            depth = float(rng.uniform(14, 40))
            tx = float(rng.uniform(0, canvas_w))
            foot = ground.foot_point(0, depth)[1]
            scale = ground.scale(depth)
            trunk_w, crown = 0.35 * scale, float(rng.uniform(1.5, 2.8)) * scale
            draw.rectangle((tx - trunk_w, foot - 3.5 * scale, tx + trunk_w, foot), fill=(80, 60, 40))
            green = (int(rng.integers(30, 90)), int(rng.integers(90, 160)), int(rng.integers(30, 80)))
            draw.ellipse((tx - crown, foot - 3.5 * scale - 1.6 * crown, tx + crown, foot - 3.5 * scale + 0.3 * crown),
                         fill=green)
    else:  # indoor: a door and pictures on the back wall
        for _ in range(int(rng.integers(1, 4))):
            fx, fy = float(rng.uniform(0, canvas_w)), float(rng.uniform(0.1, 0.6)) * floor_row
            fw, fh = float(rng.uniform(0.04, 0.12)) * canvas_w, float(rng.uniform(0.05, 0.15)) * canvas_h
            draw.rectangle((fx, fy, fx + fw, fy + fh), fill=_colour(rng, 20, 255), outline=(40, 30, 20),
                           width=max(1, int(fw // 20)))

    # Lines on the ground converging to the vanishing point: tiles, planks or paving.
    if kind != "park":
        line = tuple(int(c) for c in np.asarray(image)[min(canvas_h - 1, horizon + 2), canvas_w // 2] * 0.8)
        top = horizon if kind == "street" else floor_row
        for k in range(-12, 13):
            x_far = ground.centre_x + k * canvas_w * 0.02
            x_near = ground.centre_x + k * canvas_w * 0.25
            t = (top - horizon) / max(canvas_h - horizon, 1)
            draw.line(((x_far + (x_near - x_far) * t, top), (x_near, canvas_h)), fill=line, width=1)
        for depth in np.geomspace(2.0, 40.0, 14):
            row = ground.foot_point(0, float(depth))[1]
            if top < row < canvas_h:
                draw.line(((0, row), (canvas_w, row)), fill=line, width=1)

    canvas = np.asarray(image).astype(np.float32)
    grain = value_noise(rng, (canvas_h, canvas_w), max(3, canvas_w // 60))
    fine = rng.normal(0.0, 4.0, size=(canvas_h, canvas_w, 1)).astype(np.float32)
    canvas = canvas * (0.93 + 0.14 * grain[..., None]) + fine
    return np.clip(canvas, 0, 255).astype(np.uint8), kind


def background_files(folder: Path) -> list[Path]:
    """The images usable as backgrounds in `folder`, sorted by name (a fixed order, for determinism)."""
    if not folder.is_dir():
        raise VcsegError(f"{folder}: --backgrounds must be a folder of images")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in BACKGROUND_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise VcsegError(f"{folder}: no images ({', '.join(BACKGROUND_SUFFIXES)}) to use as backgrounds; "
                         "add some or drop --backgrounds")
    return files


def image_background(rng: np.random.Generator, path: Path, frame_hw: tuple[int, int]) -> np.ndarray:
    """A real image scaled to cover the canvas and cropped at a random spot, `(Hc, Wc, 3)` uint8."""
    canvas_h, canvas_w = canvas_size(frame_hw)
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except Exception as error:
        raise VcsegError(f"{path}: cannot read background image ({error}); remove it from --backgrounds") from None
    scale = max(canvas_w / image.width, canvas_h / image.height) * float(rng.uniform(1.0, 1.2))
    size = (max(canvas_w, math.ceil(image.width * scale)), max(canvas_h, math.ceil(image.height * scale)))
    image = image.resize(size, Image.BILINEAR)
    left = int(rng.integers(0, size[0] - canvas_w + 1))
    top = int(rng.integers(0, size[1] - canvas_h + 1))
    return np.asarray(image.crop((left, top, left + canvas_w, top + canvas_h)))


def sample_occluders(rng: np.random.Generator, ground: Ground, camera: Camera, near_depth: float) -> list[Occluder]:
    """Zero or one pillar in front of most people (so people pass behind it and vanish a while)."""
    if rng.random() >= 0.3:
        return []
    depth = near_depth * float(rng.uniform(1.0, 1.25))
    low, high = camera.visible_lateral(0, ground, depth)
    x = float(rng.uniform(low + 0.25 * (high - low), high - 0.25 * (high - low)))
    return [Occluder(x=x, depth=depth, width_m=float(rng.uniform(0.25, 0.5)), colour=_grey(rng, 50, 200, 25))]
