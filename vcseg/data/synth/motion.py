"""How people move: a role per person (cross, approach, wave, ...) becomes a path and a pose per frame.

Paths are keyframes over normalised time (0 at the first frame, 1 at the last), so that every
video length shows the whole action: a person who enters is off-frame at frame 0 and inside later,
whatever the number of frames. Gestures (waving, walking cycles) advance per frame or per metre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vcseg.data.synth.figure import Appearance, Arm, Leg, Pose
from vcseg.data.synth.scene import Camera, Ground

ROLES = ("cross", "approach", "recede", "wave", "turn", "return")
STRIDE_M = 1.4  # one full walking cycle
OFF_FRAME_M = 1.0  # how far beyond the frame edge an entering / leaving person stands (body + object)
MAX_TURN = 0.45  # radians per frame: people turn round quickly but not instantly


@dataclass(frozen=True)
class Motion:
    """One person's movement: lateral position, depth and pose at every frame."""

    role: str
    xs: np.ndarray  # (T,) metres
    depths: np.ndarray  # (T,) metres
    poses: tuple[Pose, ...]
    enters: bool  # off-frame at frame 0, inside later
    leaves: bool  # inside, then off-frame at the last frame
    returns: bool  # leaves the frame and comes back

    def to_json(self) -> dict:
        return {"role": self.role, "enters": self.enters, "leaves": self.leaves, "returns": self.returns,
                "depth_start_m": round(float(self.depths[0]), 3),
                "depth_end_m": round(float(self.depths[-1]), 3)}


def _times(frames: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)


def walking_pose(phase: float, amount: float, facing: float) -> Pose:
    """A walking cycle at `phase` (radians); amount 0 stands still, 1 walks at full stride."""
    swing = 0.42 * amount * math.sin(phase)
    legs = []
    for side_sign in (1, -1):
        thigh = side_sign * swing
        # The knee bends while the leg swings forward (the thigh's angle increasing).
        bend = 0.65 * amount * max(0.0, side_sign * math.cos(phase))
        legs.append(Leg(thigh, thigh - bend))
    arms = tuple(Arm(-s * swing * 0.9, 0.08, -s * swing * 0.9 + 0.2 + 0.25 * amount, 0.08) for s in (1, -1))
    bob = 0.01 * amount * (abs(math.cos(phase)) - 1.0)
    return Pose(facing=facing, arms=arms, legs=(legs[0], legs[1]), bob=bob)  # type: ignore[arg-type]


def wave_arm(wave_phase: float) -> Arm:
    """An arm raised beside the head, the forearm rocking side to side."""
    return Arm(0.2, 1.75, 0.2, 2.85 + 0.45 * math.sin(wave_phase))


def hold_arm(carried: str | None, sway: float) -> Arm:
    """The arm holding the object while standing: a phone is looked at, the rest hang."""
    if carried == "phone":
        return Arm(0.25, 0.1, 1.45, 0.05)
    if carried == "racket":
        return Arm(0.1 + sway, 0.15, 0.7, 0.15)
    return Arm(sway, 0.1, 0.15 + sway, 0.1)


def _facing_from_path(xs: np.ndarray, depths: np.ndarray, initial: float, bias: float) -> np.ndarray:
    """Face where you walk (turned a little towards the camera), turning at most MAX_TURN a frame."""
    facing = np.empty(len(xs))
    current = initial
    for i in range(len(xs)):
        j = min(i + 1, len(xs) - 1)
        k = max(j - 1, 0)
        dx, dd = xs[j] - xs[k], depths[j] - depths[k]
        if math.hypot(dx, dd) > 1e-4:
            target = math.atan2(dx, -dd)
            target -= bias * math.sin(target)  # a three-quarter view rather than a pure profile
            delta = (target - current + math.pi) % (2 * math.pi) - math.pi
            current += max(-MAX_TURN, min(MAX_TURN, delta))
        facing[i] = current
    return facing


def _walk_poses(xs: np.ndarray, depths: np.ndarray, facing: np.ndarray, phase0: float,
                app: Appearance) -> tuple[Pose, ...]:
    steps = np.hypot(np.diff(xs, prepend=xs[0]), np.diff(depths, prepend=depths[0]))
    distance = np.cumsum(steps)
    poses = []
    for i in range(len(xs)):
        moving = steps[i] > 1e-4 or (i + 1 < len(xs) and steps[i + 1] > 1e-4)
        pose = walking_pose(phase0 + 2 * math.pi * distance[i] / STRIDE_M, 1.0 if moving else 0.0, facing[i])
        if app.carried == "bag":  # a bag hangs: that arm barely swings
            arms = (pose.arms[0], Arm(0.0, 0.12, 0.05, 0.12))
            pose = Pose(pose.facing, arms, pose.legs, pose.bob)  # type: ignore[arg-type]
        poses.append(pose)
    return tuple(poses)


def plan_motion(rng: np.random.Generator, role: str, app: Appearance, frames: int, ground: Ground,
                camera: Camera, depth_range: tuple[float, float]) -> Motion:
    """The path and poses of one person playing `role` (see ROLES)."""
    times = _times(frames)
    near, far = depth_range
    depth = float(rng.uniform(near, far))
    phase0 = float(rng.uniform(0, 2 * math.pi))
    first, last = 0, frames - 1

    def inside(index: int, d: float, lo: float = 0.15, hi: float = 0.85) -> float:
        left, right = camera.visible_lateral(index, ground, d)
        return left + float(rng.uniform(lo, hi)) * (right - left)

    enters = leaves = returns = False
    if role in ("cross", "return"):
        direction = 1 if rng.random() < 0.5 else -1
        left0, right0 = camera.visible_lateral(first, ground, depth)
        width = right0 - left0
        if role == "cross":
            enters = bool(rng.random() < 0.5)
            leaves = bool(rng.random() < 0.4)
            start = (left0 - OFF_FRAME_M if direction > 0 else right0 + OFF_FRAME_M) if enters else \
                inside(first, depth, 0.1, 0.6) if direction > 0 else inside(first, depth, 0.4, 0.9)
            end_depth = depth * float(rng.uniform(0.85, 1.15))
            left1, right1 = camera.visible_lateral(last, ground, end_depth)
            if leaves:
                end = right1 + OFF_FRAME_M if direction > 0 else left1 - OFF_FRAME_M
            else:
                end = start + direction * (OFF_FRAME_M + float(rng.uniform(0.3, 0.6)) * width) if enters else \
                    start + direction * float(rng.uniform(0.2, 0.4)) * width
            key_t, key_x, key_d = [0.0, 1.0], [start, end], [depth, end_depth]
        else:
            # Walk out of the frame, wait outside, come back: the person disappears and returns.
            returns = True
            start = inside(first, depth, 0.35, 0.65)
            mid_t = float(rng.uniform(0.3, 0.45))
            left_m, right_m = camera.visible_lateral(int(round(mid_t * last)), ground, depth)
            out = right_m + OFF_FRAME_M if direction > 0 else left_m - OFF_FRAME_M
            back_t = min(0.85, mid_t + float(rng.uniform(0.15, 0.3)))
            key_t = [0.0, mid_t, back_t, min(1.0, back_t + 0.1), 1.0]
            key_x = [start, out, out, out - direction * 0.1 * width, start]
            key_d = [depth] * 5
        xs = np.interp(times, key_t, key_x)
        depths = np.interp(times, key_t, key_d)
        initial = math.atan2(key_x[1] - key_x[0], -(key_d[1] - key_d[0]))
        facing = _facing_from_path(xs, depths, initial, bias=float(rng.uniform(0.1, 0.4)))
        poses = _walk_poses(xs, depths, facing, phase0, app)
    elif role in ("approach", "recede"):
        d_far, d_near = far * float(rng.uniform(0.8, 1.0)), near * float(rng.uniform(1.0, 1.2))
        key_d = [d_far, d_near] if role == "approach" else [d_near, d_far]
        x0 = inside(first, key_d[0], 0.3, 0.7)
        xs = np.interp(times, [0.0, 1.0], [x0, x0 + float(rng.uniform(-0.5, 0.5))])
        depths = np.interp(times, [0.0, 1.0], key_d)
        initial = 0.0 if role == "approach" else math.pi
        facing = _facing_from_path(xs, depths, initial, bias=0.0)
        poses = _walk_poses(xs, depths, facing, phase0, app)
    else:  # wave / turn: standing in place
        x0 = inside(first, depth, 0.15, 0.85)
        xs = np.full(frames, x0 + 0.0)
        depths = np.full(frames, depth)
        facing0 = float(rng.uniform(-0.6, 0.6))
        turn = float(rng.choice((-1, 1)) * rng.uniform(math.pi, 2 * math.pi)) if role == "turn" else \
            float(rng.uniform(-0.3, 0.3))
        wave_speed = float(rng.uniform(0.5, 0.9))  # radians per frame (about 1.5 Hz at 12 fps)
        waving_side = 0 if app.carried else int(rng.integers(2))  # the free hand waves
        poses_list = []
        for i, t in enumerate(times):
            sway = 0.04 * math.sin(0.2 * i + phase0)
            idle = walking_pose(phase0, 0.0, facing0 + turn * t)
            arms = [Arm(sway, 0.1, 0.15 + sway, 0.1), hold_arm(app.carried, sway)]
            if role == "wave":
                arms[waving_side] = wave_arm(wave_speed * i + phase0)
            poses_list.append(Pose(idle.facing, (arms[0], arms[1]), idle.legs, 0.0))
        poses = tuple(poses_list)
    return Motion(role=role, xs=xs, depths=depths, poses=poses, enters=enters, leaves=leaves, returns=returns)
