"""Finding the videos, frames and masks of a dataset on disk, whatever its layout.

Layouts (detected, or forced with `layout=`):

- `davis`: `ROOT/JPEGImages[/RES]/<video>/*.jpg` and `ROOT/Annotations[/RES]/<video>/*.png`,
  where RES is a resolution folder such as `480p` (DAVIS) that may or may not be there;
- `youtube-vos`: the same folders plus `ROOT/meta.json`; masks exist only on some frames
  (every 5th in YouTube-VOS training), so a frame without a mask is normal there;
- `flat`: `ROOT/<video>/*.jpg` with each frame's PNG beside it;
- `sibling`: `ROOT/<video>/*.jpg` with masks in `MASKS/<video>/*.png` (`masks_root=`).

A dataset without any mask (a test set) is valid in every layout. Every video that appears in
either the frame tree or the mask tree is listed, so that validation can report a video with
masks but no frames as well as the reverse.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vcseg.errors import VcsegError
from vcseg.io.frames import FRAME_SUFFIXES, MASK_SUFFIX, has_suffix, is_frame_file, is_mask_file, sorted_stems

LAYOUTS = ("davis", "youtube-vos", "flat", "sibling")
FRAMES_DIR, MASKS_DIR = "JPEGImages", "Annotations"
PREFERRED_RESOLUTION = "480p"


@dataclass(frozen=True)
class VideoFiles:
    """The files of one video: frame stem -> path, both in frame order."""

    name: str
    frames: dict[str, Path]
    masks: dict[str, Path]

    @property
    def stems(self) -> list[str]:
        return list(self.frames)


@dataclass(frozen=True)
class DatasetFiles:
    """What `find_dataset` found: the layout and every video's files."""

    root: Path
    layout: str
    frames_root: Path
    masks_root: Path | None
    videos: list[VideoFiles]

    @property
    def has_masks(self) -> bool:
        return any(video.masks for video in self.videos)

    @property
    def sparse_masks(self) -> bool:
        """True where frames without masks are expected (YouTube-VOS annotates every 5th)."""
        return self.layout == "youtube-vos"

    def video(self, name: str) -> VideoFiles:
        for video in self.videos:
            if video.name == name:
                return video
        raise KeyError(name)


def _video_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.name)


def _files(folder: Path | None, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """The files of `folder` (none if it is not a folder) whose lower-case suffix is one of
    `suffixes`, hidden ones left out, by stem in frame order.

    The directory listing itself tells which entries are files (`os.scandir`; only a symbolic
    link is followed with a stat), where `Path.is_file` on each entry cost a stat per file."""
    if folder is None:
        return {}
    try:
        entries = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    by_stem = {}
    with entries:
        for entry in entries:
            if has_suffix(entry.name, suffixes) and entry.is_file():
                by_stem[os.path.splitext(entry.name)[0]] = folder / entry.name
    return {stem: by_stem[stem] for stem in sorted_stems(by_stem)}


def _holds_videos(folder: Path) -> bool:
    """True if some child folder holds frames or masks directly."""
    return any(any(is_frame_file(f) or is_mask_file(f) for f in d.iterdir()) for d in _video_dirs(folder))


def _resolve_resolution(folder: Path, resolution: str | None) -> Path:
    """DAVIS puts a resolution folder (`480p`, `Full-Resolution`) between the tree and the videos."""
    if resolution is not None:
        chosen = folder / resolution
        if not chosen.is_dir():
            raise VcsegError(f"{chosen}: no such resolution folder; choose one of "
                             f"{[d.name for d in _video_dirs(folder)]}")
        return chosen
    if _holds_videos(folder):
        return folder
    candidates = [d for d in _video_dirs(folder) if _holds_videos(d)]
    if not candidates:
        return folder
    if len(candidates) == 1:
        return candidates[0]
    names = [d.name for d in candidates]
    if PREFERRED_RESOLUTION in names:
        return folder / PREFERRED_RESOLUTION
    raise VcsegError(f"{folder}: several resolution folders {names}; pick one with --resolution")


def detect_layout(root: Path, masks_root: Path | None = None) -> str:
    """Name the layout of `root` (see the module docstring); VcsegError if none fits."""
    if masks_root is not None:
        return "sibling"
    if (root / FRAMES_DIR).is_dir():
        return "youtube-vos" if (root / "meta.json").is_file() else "davis"
    if any(is_frame_file(f) for d in _video_dirs(root) for f in d.iterdir()):
        return "flat"
    raise VcsegError(f"{root}: no dataset found; expected {root}/JPEGImages/<video>/*.jpg "
                     f"(DAVIS / YouTube-VOS) or {root}/<video>/*.jpg")


def find_dataset(root: str | os.PathLike[str], layout: str | None = None,
                 masks_root: str | os.PathLike[str] | None = None,
                 resolution: str | None = None) -> DatasetFiles:
    """List every video of the dataset at `root` with its frames and masks."""
    root = Path(root)
    if not root.is_dir():
        raise VcsegError(f"{root}: not a directory; give the dataset's root folder")
    masks_root = Path(masks_root) if masks_root is not None else None
    if masks_root is not None and not masks_root.is_dir():
        raise VcsegError(f"{masks_root}: masks folder not found")
    if layout is None:
        layout = detect_layout(root, masks_root)
    if layout not in LAYOUTS:
        raise VcsegError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")

    if layout in ("davis", "youtube-vos"):
        if not (root / FRAMES_DIR).is_dir():
            raise VcsegError(f"{root}: layout {layout} needs a {FRAMES_DIR}/ folder")
        frames_root = _resolve_resolution(root / FRAMES_DIR, resolution)
        masks_parent = root / MASKS_DIR
        masks_folder = None
        if masks_parent.is_dir():
            res = frames_root.name if frames_root != root / FRAMES_DIR else None
            masks_folder = masks_parent / res if res and (masks_parent / res).is_dir() else \
                _resolve_resolution(masks_parent, None)
    elif layout == "flat":
        frames_root, masks_folder = root, root
    else:  # sibling
        if masks_root is None:
            raise VcsegError("layout sibling needs the masks folder: pass --masks MASKS_ROOT")
        frames_root, masks_folder = root, masks_root

    names = {d.name for d in _video_dirs(frames_root)}
    if masks_folder is not None and masks_folder != frames_root:
        names |= {d.name for d in _video_dirs(masks_folder)}
    videos = [VideoFiles(name=name,
                         frames=_files(frames_root / name, FRAME_SUFFIXES),
                         masks=_files(masks_folder / name if masks_folder else None, (MASK_SUFFIX,)))
              for name in sorted(names)]
    return DatasetFiles(root=root, layout=layout, frames_root=frames_root,
                        masks_root=masks_folder, videos=videos)


def find_mask_videos(root: str | os.PathLike[str]) -> dict[str, dict[str, Path]]:
    """Masks by video and stem under `root`: `root/<video>/*.png`, or a dataset root's Annotations.

    Used for predictions and ground truth alike, so `--gt` may name a dataset root or its masks.
    """
    root = Path(root)
    if not root.is_dir():
        raise VcsegError(f"{root}: not a directory; give the folder holding <video>/<frame>.png")
    if (root / MASKS_DIR).is_dir():
        root = _resolve_resolution(root / MASKS_DIR, None)
    return {d.name: _files(d, (MASK_SUFFIX,)) for d in _video_dirs(root)}
