"""An articulated person: what they look like, how a pose places their limbs, and how they are drawn.

A figure is a 3D stick skeleton (head, torso, upper and lower arms and legs, feet) dressed as thick
limbs; it turns about its vertical axis and is projected orthographically onto the screen, its
feet on a ground point, `scale` pixels per metre. Drawing gives a *label raster*: one small uint8
crop whose pixels hold part codes (skin, shirt, ...), so that colouring, texturing, the id mask and
the carried object's own mask all come from the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

# Part codes of the label raster. FAR is added to the limbs on the far side of the body, which
# are drawn darker so that crossing legs and arms stay readable.
SKIN, HAIR, SHIRT, LOWER, SHOES, OBJECT, OBJECT_TRIM, EYES = range(1, 9)
FAR = 16
PART_MASK = 15

CARRIED_KINDS = ("bag", "phone", "racket", "ball")
PATTERNS = ("plain", "stripes", "checks", "dots", "melange")
HAIR_STYLES = ("short", "long", "bald")
LOWER_KINDS = ("trousers", "shorts", "skirt")

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class Appearance:
    """Body proportions and clothing of one person (all lengths in metres)."""

    height_m: float
    build: float  # width factor of torso and limbs, ~0.85 (slim) .. 1.2 (broad)
    skin: Colour
    hair: Colour
    hair_style: str
    shirt: Colour
    shirt_accent: Colour  # second colour of the shirt's pattern
    shirt_pattern: str
    pattern_period_m: float
    long_sleeves: bool
    lower: Colour
    lower_kind: str
    lower_pattern: str
    shoes: Colour
    carried: str | None  # one of CARRIED_KINDS, held in the hand on side +1
    carried_colour: Colour

    def to_json(self) -> dict:
        return {"height_m": round(self.height_m, 3), "build": round(self.build, 3),
                "skin": list(self.skin), "hair": list(self.hair), "hair_style": self.hair_style,
                "shirt": list(self.shirt), "shirt_accent": list(self.shirt_accent),
                "shirt_pattern": self.shirt_pattern, "long_sleeves": self.long_sleeves,
                "lower": list(self.lower), "lower_kind": self.lower_kind,
                "lower_pattern": self.lower_pattern, "shoes": list(self.shoes),
                "carried": self.carried,
                "carried_colour": list(self.carried_colour) if self.carried else None}


class Arm(NamedTuple):
    """Absolute segment angles (radians): flex swings forward, abduct lifts sideways."""

    upper_flex: float
    upper_abduct: float
    lower_flex: float
    lower_abduct: float


class Leg(NamedTuple):
    thigh_flex: float
    shin_flex: float


@dataclass(frozen=True)
class Pose:
    """Where the limbs are. Arms and legs are (side -1, side +1); +1 holds the carried object.

    facing: rotation about the vertical axis; 0 faces the camera, pi/2 faces screen right.
    bob: vertical offset of the whole body as a fraction of its height (walking bounce).
    """

    facing: float
    arms: tuple[Arm, Arm]
    legs: tuple[Leg, Leg]
    bob: float = 0.0


STANDING = Pose(facing=0.0, arms=(Arm(0.0, 0.1, 0.1, 0.1),) * 2, legs=(Leg(0.0, 0.0),) * 2)


def _clip_colour(values) -> Colour:
    return tuple(int(min(255, max(0, round(v)))) for v in values)  # type: ignore[return-value]


def _hsv_colour(rng: np.random.Generator, saturation: tuple[float, float],
                value: tuple[float, float]) -> Colour:
    import colorsys

    rgb = colorsys.hsv_to_rgb(float(rng.random()), float(rng.uniform(*saturation)), float(rng.uniform(*value)))
    return _clip_colour(255 * c for c in rgb)


_SKIN_TONES = ((255, 224, 196), (241, 194, 160), (224, 172, 105), (198, 134, 66), (141, 85, 36),
               (92, 58, 33), (234, 192, 134))
_HAIR_COLOURS = ((20, 16, 14), (59, 36, 20), (110, 70, 35), (180, 140, 80), (140, 140, 140),
                 (90, 20, 15), (230, 210, 160))


def sample_appearance(rng: np.random.Generator, carry_probability: float = 0.45) -> Appearance:
    """A random person; every draw comes from `rng`, in a fixed order."""
    skin = _SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))]
    skin = _clip_colour(c * rng.uniform(0.92, 1.06) for c in skin)
    shirt = _hsv_colour(rng, (0.1, 0.9), (0.25, 0.95))
    accent = _hsv_colour(rng, (0.0, 0.8), (0.1, 1.0))
    lower = _hsv_colour(rng, (0.05, 0.7), (0.12, 0.6))
    carried = CARRIED_KINDS[int(rng.integers(len(CARRIED_KINDS)))] if rng.random() < carry_probability else None
    return Appearance(
        height_m=float(rng.uniform(1.5, 1.92)),
        build=float(rng.uniform(0.85, 1.2)),
        skin=skin,
        hair=_HAIR_COLOURS[int(rng.integers(len(_HAIR_COLOURS)))],
        hair_style=HAIR_STYLES[int(rng.choice(3, p=(0.5, 0.4, 0.1)))],
        shirt=shirt,
        shirt_accent=accent,
        shirt_pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
        pattern_period_m=float(rng.uniform(0.03, 0.08)),
        long_sleeves=bool(rng.random() < 0.5),
        lower=lower,
        lower_kind=LOWER_KINDS[int(rng.choice(3, p=(0.6, 0.2, 0.2)))],
        lower_pattern=("plain", "melange")[int(rng.integers(2))],
        shoes=_hsv_colour(rng, (0.0, 0.5), (0.05, 0.9)),
        carried=carried,
        carried_colour=_hsv_colour(rng, (0.5, 1.0), (0.4, 1.0)),
    )


# ---- geometry -------------------------------------------------------------------------------------

# Proportions as fractions of body height (a simplified adult canon).
_HIP_Y, _SHOULDER_Y, _NECK_Y, _HEAD_Y = 0.52, 0.815, 0.85, 0.925
_HIP_X, _SHOULDER_X = 0.085, 0.125
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.175, 0.155, 0.245, 0.235
_HEAD_RX, _HEAD_RY = 0.058, 0.068


class Shape(NamedTuple):
    """One filled primitive of the label raster, in screen pixels, drawn in `order`."""

    order: float
    code: int
    kind: str  # "poly" (points), "capsule" (p0, p1, radius), "ellipse" (centre, rx, ry)
    points: tuple


def _direction(flex: float, abduct: float, side: int) -> np.ndarray:
    """Unit vector of a limb segment in the body frame (x: side +1, y: up, z: forward)."""
    return np.array([side * math.sin(abduct), -math.cos(abduct) * math.cos(flex),
                     math.cos(abduct) * math.sin(flex)])


class _Projector:
    """Body frame (metres) -> screen pixels, after turning the body by `facing`."""

    def __init__(self, foot_xy: tuple[float, float], scale: float, facing: float):
        self.fx, self.fy, self.scale = foot_xy[0], foot_xy[1], scale
        self.c, self.s = math.cos(facing), math.sin(facing)

    def depth(self, p: np.ndarray) -> float:
        """Towards the camera is positive."""
        return -p[0] * self.s + p[2] * self.c

    def __call__(self, p: np.ndarray) -> tuple[float, float]:
        return (self.fx + self.scale * (p[0] * self.c + p[2] * self.s), self.fy - self.scale * p[1])


def figure_shapes(app: Appearance, pose: Pose, foot_xy: tuple[float, float], scale: float) -> list[Shape]:
    """The primitives of a figure standing on `foot_xy` (pixels), `scale` pixels per metre.

    Painter's order within the figure follows depth after turning: far limbs, torso, near limbs,
    head. Returned sorted by `order`.
    """
    h = app.height_m
    bob = pose.bob * h
    proj = _Projector(foot_xy, scale, pose.facing)
    px = scale * h  # pixels per body height
    shapes: list[Shape] = []
    c_abs = abs(proj.c)

    # Legs: thigh, shin, foot.
    hip_depths = []
    for index, side in enumerate((-1, 1)):
        leg = pose.legs[index]
        hip = np.array([side * _HIP_X * h * app.build, _HIP_Y * h + bob, 0.0])
        knee = hip + _THIGH * h * _direction(leg.thigh_flex, 0.03, side)
        ankle = knee + _SHIN * h * _direction(leg.shin_flex, 0.03, side)
        heel = ankle + np.array([0.0, -0.018 * h, -0.02 * h])
        toe = ankle + np.array([0.0, -0.022 * h, 0.075 * h])
        order = proj.depth(hip)
        hip_depths.append(order)
        far = FAR if order < -1e-6 else 0
        shin_code = SKIN if app.lower_kind != "trousers" else LOWER
        thigh_r = 0.05 * px * app.build
        shapes.append(Shape(order, LOWER + far, "capsule", (proj(hip), proj(knee), thigh_r)))
        shapes.append(Shape(order, shin_code + far, "capsule", (proj(knee), proj(ankle), 0.036 * px * app.build)))
        shapes.append(Shape(order + 1e-4, SHOES + far, "capsule", (proj(heel), proj(toe), 0.022 * px)))

    # Torso and hips: a trapezoid whose visible width blends shoulder width and chest depth.
    shoulder_half = math.hypot(_SHOULDER_X * app.build * proj.c, 0.07 * proj.s) * px
    hip_half = math.hypot((_HIP_X + 0.03) * app.build * proj.c, 0.075 * proj.s) * px
    cx, base = proj.fx, proj.fy
    y_of = lambda frac: base - (frac * h + bob) * scale  # noqa: E731 - a local unit conversion
    round_off = 0.03 * px
    shapes.append(Shape(-2e-3, LOWER, "poly", ((cx - hip_half, y_of(0.575)), (cx + hip_half, y_of(0.575)),
                                               (cx + hip_half, y_of(0.47)), (cx - hip_half, y_of(0.47)))))
    shapes.append(Shape(0.0, SHIRT, "poly", (
        (cx - shoulder_half + round_off, y_of(0.845)), (cx + shoulder_half - round_off, y_of(0.845)),
        (cx + shoulder_half, y_of(0.80)), (cx + hip_half, y_of(0.52)),
        (cx - hip_half, y_of(0.52)), (cx - shoulder_half, y_of(0.80)))))
    if app.lower_kind == "skirt":
        spread = hip_half * 1.55
        shapes.append(Shape(max(hip_depths) + 1e-3, LOWER, "poly", (
            (cx - hip_half, y_of(0.56)), (cx + hip_half, y_of(0.56)),
            (cx + spread, y_of(0.30)), (cx - spread, y_of(0.30)))))

    # Arms: upper arm, forearm, hand; the hand on side +1 holds the carried object.
    for index, side in enumerate((-1, 1)):
        arm = pose.arms[index]
        shoulder = np.array([side * _SHOULDER_X * h * app.build, _SHOULDER_Y * h + bob, 0.0])
        lower_dir = _direction(arm.lower_flex, arm.lower_abduct, side)
        elbow = shoulder + _UPPER_ARM * h * _direction(arm.upper_flex, arm.upper_abduct, side)
        wrist = elbow + _FOREARM * h * lower_dir
        hand = wrist + 0.03 * h * lower_dir
        order = proj.depth(shoulder) + 2e-3
        far = FAR if proj.depth(shoulder) < -1e-6 else 0
        forearm_code = SHIRT if app.long_sleeves else SKIN
        shapes.append(Shape(order, SHIRT + far, "capsule", (proj(shoulder), proj(elbow), 0.034 * px * app.build)))
        shapes.append(Shape(order, forearm_code + far, "capsule", (proj(elbow), proj(wrist), 0.027 * px * app.build)))
        shapes.append(Shape(order, SKIN + far, "ellipse", (proj(hand), 0.028 * px, 0.028 * px)))
        if side == 1 and app.carried:
            shapes.extend(_object_shapes(app.carried, proj, hand, lower_dir, h, px, order + 1e-4))

    # Neck, hair, face.
    head = np.array([0.0, _HEAD_Y * h + bob, 0.0])
    head_xy = proj(head)
    neck_top = proj(np.array([0.0, (_NECK_Y + 0.03) * h + bob, 0.0]))
    neck_base = proj(np.array([0.0, (_SHOULDER_Y - 0.01) * h + bob, 0.0]))
    shapes.append(Shape(1.5e-3, SKIN, "capsule", (neck_base, neck_top, 0.03 * px)))
    head_order = 10.0  # the head is drawn last: nothing of the figure passes in front of it here
    if app.hair_style == "long":
        # Long hair falls behind the shoulders: behind the torso when facing the camera.
        shapes.append(Shape(-0.3 * proj.c, HAIR, "poly", (
            (head_xy[0] - _HEAD_RX * px * 1.05, head_xy[1]), (head_xy[0] + _HEAD_RX * px * 1.05, head_xy[1]),
            (head_xy[0] + _HEAD_RX * px * 1.2, y_of(0.76)), (head_xy[0] - _HEAD_RX * px * 1.2, y_of(0.76)))))
    bald = app.hair_style == "bald"
    shapes.append(Shape(head_order, SKIN if bald else HAIR, "ellipse",
                        (head_xy, _HEAD_RX * px * 1.04, _HEAD_RY * px * 1.03)))
    if proj.c > -0.25 and not bald:
        # The face: an oval pushed towards where the head looks, below the hairline.
        forward = 0.02 * px * proj.s
        face_xy = (head_xy[0] + forward, head_xy[1] + 0.012 * px)
        shapes.append(Shape(head_order + 0.1, SKIN, "ellipse",
                            (face_xy, _HEAD_RX * px * (0.55 + 0.35 * c_abs), _HEAD_RY * px * 0.85)))
    if proj.c > 0.35:
        eye_dx = 0.02 * px * proj.c
        for sign in (-1, 1):
            eye = (head_xy[0] + 0.035 * px * proj.s + sign * eye_dx, head_xy[1] + 0.0)
            shapes.append(Shape(head_order + 0.2, EYES, "ellipse", (eye, 0.006 * px, 0.007 * px)))
    shapes.sort(key=lambda shape: shape.order)
    return shapes


def _object_shapes(kind: str, proj: _Projector, hand: np.ndarray, forearm: np.ndarray,
                   h: float, px: float, order: float) -> list[Shape]:
    """The carried object at the hand, in the object's own codes (their mask gets the person's id)."""
    hx, hy = proj(hand)
    tip = proj(hand + forearm)
    axis = np.array([tip[0] - hx, tip[1] - hy])
    norm = float(np.hypot(*axis))
    axis = axis / norm if norm > 1e-6 else np.array([0.0, 1.0])  # along the forearm, on screen
    normal = np.array([-axis[1], axis[0]])
    centre = np.array([hx, hy])

    def rect(c: np.ndarray, along: float, across: float) -> tuple:
        a, n = axis * along / 2, normal * across / 2
        return tuple(tuple(map(float, c + sa * a + sn * n)) for sa, sn in ((-1, -1), (1, -1), (1, 1), (-1, 1)))

    if kind == "phone":
        return [Shape(order, OBJECT, "poly", rect(centre + axis * 0.02 * px, 0.085 * px, 0.045 * px)),
                Shape(order + 1e-5, OBJECT_TRIM, "poly", rect(centre + axis * 0.02 * px, 0.07 * px, 0.032 * px))]
    if kind == "ball":
        ball = (float(hx), float(hy + 0.05 * px))
        return [Shape(order, OBJECT, "ellipse", (ball, 0.065 * px, 0.065 * px)),
                Shape(order + 1e-5, OBJECT_TRIM, "capsule",
                      ((ball[0] - 0.06 * px, ball[1]), (ball[0] + 0.06 * px, ball[1]), 0.006 * px))]
    if kind == "racket":
        grip_end = centre + axis * 0.13 * px
        head_c = centre + axis * 0.22 * px
        ring = tuple(tuple(map(float, head_c + axis * 0.095 * px * math.cos(a) + normal * 0.07 * px * math.sin(a)))
                     for a in np.linspace(0, 2 * math.pi, 20, endpoint=False))
        inner = tuple(tuple(map(float, head_c + axis * 0.075 * px * math.cos(a) + normal * 0.052 * px * math.sin(a)))
                      for a in np.linspace(0, 2 * math.pi, 20, endpoint=False))
        return [Shape(order, OBJECT_TRIM, "capsule", ((hx, hy), tuple(map(float, grip_end)), 0.012 * px)),
                Shape(order + 1e-5, OBJECT, "poly", ring), Shape(order + 2e-5, OBJECT_TRIM, "poly", inner)]
    # bag: a strap from the hand to a box hanging straight down (gravity, not the forearm).
    width = 0.17 * px * (0.55 + 0.45 * abs(proj.c))
    top = hy + 0.045 * px
    body = ((hx - width / 2, top), (hx + width / 2, top), (hx + width / 2, top + 0.14 * px),
            (hx - width / 2, top + 0.14 * px))
    return [Shape(order, OBJECT_TRIM, "capsule", ((hx, hy), (hx, top + 0.01 * px), 0.008 * px)),
            Shape(order + 1e-5, OBJECT, "poly", body)]


# ---- raster -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureRaster:
    """A figure's label raster: part codes in a crop whose top-left pixel is (x0, y0) of the frame."""

    x0: int
    y0: int
    codes: np.ndarray  # (h, w) uint8 part codes, 0 where the figure is not

    @property
    def parts(self) -> np.ndarray:
        return self.codes & PART_MASK

    def object_mask(self) -> np.ndarray:
        """(h, w) bool: the pixels of the carried object (which carry the person's id)."""
        parts = self.parts
        return (parts == OBJECT) | (parts == OBJECT_TRIM)


def rasterize(shapes: list[Shape], frame_hw: tuple[int, int]) -> FigureRaster | None:
    """Draw the shapes (already in order) into the smallest crop of the frame; None if off-frame."""
    xs, ys = [], []
    for shape in shapes:
        for x, y, r in _extent(shape):
            xs += (x - r, x + r)
            ys += (y - r, y + r)
    height, width = frame_hw
    x0, y0 = max(0, math.floor(min(xs)) - 1), max(0, math.floor(min(ys)) - 1)
    x1, y1 = min(width, math.ceil(max(xs)) + 2), min(height, math.ceil(max(ys)) + 2)
    if x1 <= x0 or y1 <= y0:
        return None
    image = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        _draw(draw, shape, x0, y0)
    codes = np.asarray(image)
    if not codes.any():
        return None
    return FigureRaster(x0, y0, codes)


def _extent(shape: Shape):
    if shape.kind == "poly":
        return [(x, y, 0.0) for x, y in shape.points]
    if shape.kind == "capsule":
        p0, p1, r = shape.points
        return [(p0[0], p0[1], r), (p1[0], p1[1], r)]
    (x, y), rx, ry = shape.points
    return [(x, y, max(rx, ry))]


def _draw(draw: ImageDraw.ImageDraw, shape: Shape, x0: int, y0: int) -> None:
    if shape.kind == "poly":
        draw.polygon([(x - x0, y - y0) for x, y in shape.points], fill=shape.code)
    elif shape.kind == "capsule":
        (ax, ay), (bx, by), r = shape.points
        ax, ay, bx, by = ax - x0, ay - y0, bx - x0, by - y0
        length = math.hypot(bx - ax, by - ay)
        if length > 1e-6:
            nx, ny = -(by - ay) / length * r, (bx - ax) / length * r
            draw.polygon([(ax + nx, ay + ny), (bx + nx, by + ny), (bx - nx, by - ny), (ax - nx, ay - ny)],
                         fill=shape.code)
        for x, y in ((ax, ay), (bx, by)):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=shape.code)
    else:
        (x, y), rx, ry = shape.points
        x, y = x - x0, y - y0
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=shape.code)


# ---- colour -------------------------------------------------------------------------------------------


def _pattern(kind: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray | None:
    """Weight of the accent colour (0..1) at body coordinates u (across), v (up), in metres."""
    if kind == "stripes":
        return (np.floor(v / period) % 2).astype(np.float32)
    if kind == "checks":
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    if kind == "dots":
        fu, fv = u / period % 1.0 - 0.5, v / period % 1.0 - 0.5
        return (fu * fu + fv * fv < 0.08).astype(np.float32)
    if kind == "melange":
        return (0.5 + 0.25 * np.sin(u * 91.0 + v * 37.0) * np.sin(u * 23.0 - v * 143.0)).astype(np.float32)
    return None


def colourize(raster: FigureRaster, app: Appearance, foot_xy: tuple[float, float], scale: float,
              light: float = 0.15, tint: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """RGB and alpha of a figure's crop: `(h, w, 3)` float32 colours and `(h, w)` float32 alpha.

    Patterns live in body coordinates, so they move and scale with the person. `light` shades
    one side of the body; the alpha is softened over one pixel so edges blend like a camera's.
    """
    palette = np.zeros((PART_MASK + 1, 3), np.float32)
    trim = tuple(c * 0.45 + 40 for c in app.carried_colour)
    for code, colour in ((SKIN, app.skin), (HAIR, app.hair), (SHIRT, app.shirt), (LOWER, app.lower),
                         (SHOES, app.shoes), (OBJECT, app.carried_colour), (OBJECT_TRIM, trim),
                         (EYES, (25, 20, 20))):
        palette[code] = colour
    parts = raster.parts
    rgb = palette[parts]  # (h, w, 3)
    rows, cols = parts.shape
    u = ((np.arange(cols, dtype=np.float32) + raster.x0 - foot_xy[0]) / scale)[None, :]  # (1, w) metres
    v = ((foot_xy[1] - np.arange(rows, dtype=np.float32) - raster.y0) / scale)[:, None]  # (h, 1) metres
    for code, kind, base, accent in ((SHIRT, app.shirt_pattern, app.shirt, app.shirt_accent),
                                     (LOWER, app.lower_pattern, app.lower, tuple(c * 0.7 for c in app.lower))):
        where = parts == code
        if not where.any():
            continue
        weight = _pattern(kind, np.broadcast_to(u, parts.shape), np.broadcast_to(v, parts.shape),
                          app.pattern_period_m)
        if weight is not None:
            w = weight[where][:, None]
            rgb[where] = (1 - w) * np.asarray(base, np.float32) + w * np.asarray(accent, np.float32)
    half = 0.22 * app.height_m
    shade = 1.0 + light * np.clip(u / half, -1.0, 1.0) + 0.08 * np.clip(v / app.height_m - 0.5, -0.5, 0.5)
    shade = np.where(raster.codes >= FAR, shade * 0.78, shade)  # (h, w)
    rgb *= shade[..., None]
    if tint is not None:
        rgb *= tint
    return rgb, _soft_alpha(parts > 0)


def _soft_alpha(inside: np.ndarray) -> np.ndarray:
    """3x3 box average of a boolean mask, as float32: a one-pixel anti-aliased edge."""
    padded = np.pad(inside.astype(np.float32), 1)
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    return (rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 9.0
