"""What to synthesize: one typed config, and the parsers for its command-line spellings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vcseg.errors import VcsegError

PRESETS = ("default", "crowd")
CROWD_PEOPLE = (9, 12)  # more than the competition's 8-instance cap
MIN_SIDE = 32  # below this a figure is a few pixels and the scene geometry degenerates


@dataclass(frozen=True)
class SynthConfig:
    """The arguments of `vcseg synth`; the same config always gives the same bytes.

    preset: "default", or "crowd" (every third video, starting with the first, holds
        CROWD_PEOPLE people whatever people_min/people_max say).
    backgrounds: folder of real images used as backgrounds instead of procedural scenes.
    name_prefix: videos are named <name_prefix>0000, <name_prefix>0001, ... (a test set made
        beside a training set gets names of its own, as a real one would).
    """

    videos: int = 20
    frames: int = 60
    height: int = 480
    width: int = 854
    people_min: int = 1
    people_max: int = 4
    seed: int = 0
    frames_only: bool = False
    preset: str = "default"
    backgrounds: Path | None = None
    name_prefix: str = "synth"

    def __post_init__(self) -> None:
        if self.videos < 1 or self.frames < 1:
            raise VcsegError(f"--videos and --frames must be at least 1 (got {self.videos}, {self.frames})")
        if self.height < MIN_SIDE or self.width < MIN_SIDE:
            raise VcsegError(f"--size {self.height}x{self.width} is too small; use at least "
                             f"{MIN_SIDE}x{MIN_SIDE}")
        if not 0 <= self.people_min <= self.people_max <= 255:
            raise VcsegError(f"--people {self.people_min}-{self.people_max}: need 0 <= MIN <= MAX <= 255")
        if self.preset not in PRESETS:
            raise VcsegError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if not self.name_prefix or not all(c.isalnum() or c in "-_" for c in self.name_prefix):
            raise VcsegError(f"--name-prefix {self.name_prefix!r}: use letters, digits, - and _ only")
        if self.seed < 0:
            raise VcsegError(f"--seed must be >= 0 (got {self.seed})")

    def is_crowd_video(self, index: int) -> bool:
        return self.preset == "crowd" and index % 3 == 0

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["backgrounds"] = str(self.backgrounds) if self.backgrounds is not None else None
        return record


def parse_size(text: str) -> tuple[int, int]:
    """`"480x854"` -> (480, 854): height first, as in the issue's `--size HxW`."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise VcsegError(f"--size {text!r}: write it as HEIGHTxWIDTH, e.g. 480x854")
    return int(parts[0]), int(parts[1])


def parse_people(text: str) -> tuple[int, int]:
    """`"1-4"` -> (1, 4); a single number `"3"` -> (3, 3)."""
    parts = text.split("-")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() for p in parts):
        raise VcsegError(f"--people {text!r}: write it as MIN-MAX, e.g. 1-4")
    low, high = int(parts[0]), int(parts[-1])
    return low, high
