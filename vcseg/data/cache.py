"""The frame cache: every video's frames and masks resized once, stored as memory-mappable arrays.

Decoding full-size JPGs dominates data loading; a cached clip is a slice of a memory-mapped array.

Layout on disk, one folder per short side so that several sizes can live side by side:

    CACHE/short<S>/<video>/frames.npy     (T, H, W, 3) uint8 RGB, short side S
                          /masks.npy      (T, H, W) uint8 ids; absent for a video without masks
                          /manifest.json  stems, which frames have a mask, and the key

The key is each source file's name, size and mtime: `build_cache` rebuilds exactly the videos
whose files changed. A video is written into a hidden temporary folder beside its final place and
renamed into place complete, so a reader never sees half a video; a temporary folder left by a
crashed build is ignored by readers and removed by the next build. One build at a time per cache.

A video's folder belongs to the cache alone: a rebuild replaces it whole, so a build refuses (one
line, before writing anything) a video folder that holds anything but the three files above.
Files elsewhere under CACHE are never touched.

`load_clip` is what training and prediction call: it reads from a cache when given one whose
entries for the clip are fresh, and otherwise decodes the files, resizing the same way, so the two
paths return equal arrays.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.format import open_memmap
from PIL import Image
from rich.progress import Progress

from vcseg.errors import VcsegError
from vcseg.io.layouts import DatasetFiles, VideoFiles
from vcseg.io.frames import read_frame
from vcseg.io.masks import read_mask
from vcseg.io.outputs import pid_alive

CACHE_VERSION = 1
MANIFEST = "manifest.json"
FRAMES_FILE, MASKS_FILE = "frames.npy", "masks.npy"
_CACHE_FILES = frozenset((MANIFEST, FRAMES_FILE, MASKS_FILE))  # all a video folder ever holds
_TMP_SUFFIX = ".tmp"


# ---- resizing: the one way frames and masks are scaled (the cache, the fallback, compose) ----

def scaled_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(height, width) with the short side equal to `short_side`, the aspect ratio kept (rounded)."""
    if short_side < 1:
        raise ValueError(f"short_side must be positive, got {short_side}")
    scale = short_side / min(height, width)
    if height <= width:
        return short_side, max(1, round(width * scale))
    return max(1, round(height * scale)), short_side


def resize_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W, 3) uint8 frame to `size` = (height, width), bilinear.

    Pillow's bilinear widens its support when shrinking, so a reduction averages like an area filter.
    """
    if frame.shape[:2] == tuple(size):
        return frame
    return np.asarray(Image.fromarray(frame).resize((size[1], size[0]), Image.Resampling.BILINEAR))


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W) id mask to `size` = (height, width), nearest neighbour (ids never blend)."""
    if mask.shape[:2] == tuple(size):
        return mask
    return np.asarray(Image.fromarray(mask).resize((size[1], size[0]), Image.Resampling.NEAREST))


def load_frame_pair(frame_path: Path, mask_path: Path | None,
                    short_side: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode one frame (and its mask) and resize both to the short side: (h, w, 3), (h, w) or None."""
    frame = read_frame(frame_path)
    size = scaled_size(frame.shape[0], frame.shape[1], short_side)
    mask = None
    if mask_path is not None:
        mask = read_mask(mask_path)
        if mask.shape != frame.shape[:2]:
            raise VcsegError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but frame "
                             f"{frame_path.name} is {frame.shape[1]}x{frame.shape[0]}; "
                             "re-export the mask at its frame's size")
        mask = resize_mask(mask, size)
    return resize_frame(frame, size), mask


# ---- the key ------------------------------------------------------------------------------------

def _file_key(path: Path | None) -> list[Any] | None:
    if path is None:
        return None
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def _frame_key(video: VideoFiles, stem: str) -> list[Any]:
    """What identifies one frame's cached content: its frame file and mask file (or None)."""
    return [_file_key(video.frames[stem]), _file_key(video.masks.get(stem))]


def video_key(video: VideoFiles) -> dict[str, list[Any]]:
    """stem -> key of the frame's source files, in frame order."""
    return {stem: _frame_key(video, stem) for stem in video.stems}


# ---- building -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CacheSummary:
    """What `build_cache` did: which videos it wrote and which were already up to date."""

    cache_dir: Path
    short_side: int
    built: tuple[str, ...]
    reused: tuple[str, ...]
    skipped: tuple[str, ...]  # videos without frames (nothing to cache)
    frames_written: int


def cache_root(cache_dir: str | os.PathLike[str], short_side: int) -> Path:
    """The folder holding one short side's videos."""
    return Path(cache_dir) / f"short{short_side}"


def build_cache(dataset: DatasetFiles, cache_dir: str | os.PathLike[str], short_side: int, *,
                progress: bool = True) -> CacheSummary:
    """Cache every video of `dataset` at `short_side`, rebuilding only videos whose files changed.

    Frames are resized bilinear, masks nearest (see `resize_frame`, `resize_mask`). Each video is
    written atomically; an exception mid-video leaves that video's previous cache (if any) intact.
    """
    root = cache_root(cache_dir, short_side)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_folders(root)

    built, reused, skipped, todo = [], [], [], []
    for video in dataset.videos:
        if not video.frames:
            skipped.append(video.name)
            continue
        key = video_key(video)
        if _manifest_matches(root / video.name, key, short_side):
            reused.append(video.name)
        else:
            _check_only_cache_files(root / video.name)
            todo.append((video, key))

    frames_written = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"caching at short side {short_side}",
                            total=sum(len(video.frames) for video, _ in todo))
        for video, key in todo:
            _write_video(video, key, root / video.name, short_side,
                         on_frame=lambda: bar.advance(task))
            built.append(video.name)
            frames_written += len(key)
    return CacheSummary(cache_dir=Path(cache_dir), short_side=short_side, built=tuple(built),
                        reused=tuple(reused), skipped=tuple(skipped), frames_written=frames_written)


def _check_only_cache_files(folder: Path) -> None:
    """Refuse to rebuild a video folder that holds files the cache did not write: the swap would lose them."""
    if not folder.exists() and not folder.is_symlink():
        return
    if not folder.is_dir() or folder.is_symlink():
        raise VcsegError(f"{folder}: is not a frame cache folder; move it away or choose another cache folder")
    foreign = sorted(entry.name for entry in folder.iterdir() if entry.name not in _CACHE_FILES)
    if foreign:
        raise VcsegError(f"{folder}: holds {', '.join(foreign[:3])}, which the frame cache did not write "
                         "and a rebuild would delete; move it away or choose another cache folder")


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _manifest_matches(folder: Path, key: dict[str, list[Any]], short_side: int) -> bool:
    manifest = _read_manifest(folder)
    return (manifest is not None and manifest.get("version") == CACHE_VERSION
            and manifest.get("short_side") == short_side
            and manifest.get("stems") == list(key) and manifest.get("key") == list(key.values()))


def _write_video(video: VideoFiles, key: dict[str, list[Any]], target: Path, short_side: int,
                 on_frame=lambda: None) -> None:
    """Write one video into a temporary folder, then swap it in place of `target`."""
    stems = list(key)
    tmp = _make_temp_folder(target)
    try:
        has_mask = [stem in video.masks for stem in stems]
        frames_out = masks_out = None
        for index, stem in enumerate(stems):
            frame_path, mask_path = video.frames[stem], video.masks.get(stem)
            frame, mask = load_frame_pair(frame_path, mask_path, short_side)
            if frames_out is None:
                shape = frame.shape[:2]
                frames_out = open_memmap(tmp / FRAMES_FILE, mode="w+", dtype=np.uint8,
                                         shape=(len(stems), *shape, 3))  # T, H, W, 3
                if any(has_mask):
                    masks_out = open_memmap(tmp / MASKS_FILE, mode="w+", dtype=np.uint8,
                                            shape=(len(stems), *shape))  # T, H, W; 0 where no mask
            if frame.shape[:2] != shape:
                raise VcsegError(f"{frame_path}: resized to {frame.shape[1]}x{frame.shape[0]}, unlike the "
                                 f"video's first frame ({shape[1]}x{shape[0]}); all frames of a video "
                                 "must share one size: re-export this frame")
            frames_out[index] = frame
            if mask is not None:
                masks_out[index] = mask
            on_frame()
        for array in (frames_out, masks_out):
            if array is not None:
                array.flush()
        del frames_out, masks_out  # close the memory maps before the rename
        manifest = {"version": CACHE_VERSION, "video": video.name, "short_side": short_side,
                    "stems": stems, "has_mask": has_mask, "key": list(key.values())}
        (tmp / MANIFEST).write_text(json.dumps(manifest) + "\n")
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _make_temp_folder(target: Path) -> Path:
    """A hidden folder beside `target` (same file system, so renames are atomic) naming our pid."""
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=f".{os.getpid()}{_TMP_SUFFIX}",
                                 dir=target.parent))


def _swap_into_place(new: Path, target: Path) -> None:
    """Rename the complete folder `new` onto `target`, replacing an older version of it.

    rename(2) replaces only an empty folder, so the old version first moves aside (onto an empty
    temporary folder) and is deleted after; in between, a reader sees the video as not cached
    (and decodes the files), never a mix of two versions.
    """
    if target.exists():
        old = _make_temp_folder(target)
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def remove_stale_temp_folders(root: Path) -> list[Path]:
    """Delete temporary folders left under `root` by builds that crashed; return what was removed.

    A folder belongs to a crashed build when its process is gone, or when it is this process
    (builds within a process run one after the other, so none of ours is in progress now).
    """
    removed = []
    if not root.is_dir():
        return removed
    for entry in root.iterdir():
        if not (entry.name.startswith(".") and entry.name.endswith(_TMP_SUFFIX) and entry.is_dir()):
            continue
        pid_text = entry.name[: -len(_TMP_SUFFIX)].rsplit(".", 1)[-1]
        if not pid_text.isdigit():  # not named by `_make_temp_folder`: not ours to delete
            continue
        pid = int(pid_text)
        if pid == os.getpid() or not pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


# ---- reading ------------------------------------------------------------------------------------

@dataclass
class CachedVideo:
    """One cached video: its stems and memory-mapped arrays (pixels load only when touched)."""

    name: str
    folder: Path
    stems: list[str]
    has_mask: np.ndarray  # (T,) bool: frames whose mask exists in the source
    frames: np.ndarray  # (T, H, W, 3) uint8, memory-mapped
    masks: np.ndarray | None  # (T, H, W) uint8, memory-mapped; None for a video without masks
    key: dict[str, list[Any]] = field(repr=False)
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {stem: i for i, stem in enumerate(self.stems)}

    def index(self, stem: str) -> int:
        """Position of `stem` in the arrays; KeyError if the video has no such frame."""
        return self._index[stem]

    def is_fresh(self, video: VideoFiles, stems: Sequence[str] | None = None) -> bool:
        """True when the source files of `stems` (all frames by default) are those cached."""
        stems = video.stems if stems is None else stems
        try:
            return all(stem in self.key and self.key[stem] == _frame_key(video, stem) for stem in stems)
        except (OSError, KeyError):
            return False


class FrameCache:
    """Reads the videos `build_cache` wrote under `cache_dir` at one short side.

    Example:
        cache = FrameCache("cache", 480)
        video = cache.video("hockey")
        clip = video.frames[[3, 5, 7]]  # (3, 480, 854, 3) uint8, read from the memory map
    """

    def __init__(self, cache_dir: str | os.PathLike[str], short_side: int) -> None:
        self.cache_dir = Path(cache_dir)
        self.short_side = short_side
        self.root = cache_root(cache_dir, short_side)
        self._open: dict[str, CachedVideo] = {}

    def videos(self) -> list[str]:
        """Names of the cached videos (temporary folders of builds in progress are not videos)."""
        if not self.root.is_dir():
            return []
        return sorted(d.name for d in self.root.iterdir()
                      if not d.name.startswith(".") and (d / MANIFEST).is_file())

    def __contains__(self, name: str) -> bool:
        return (self.root / name / MANIFEST).is_file()

    def video(self, name: str) -> CachedVideo:
        """The cached video `name`; VcsegError if it is not in the cache."""
        if name not in self._open:
            self._open[name] = self._load(name)
        return self._open[name]

    def forget(self, name: str) -> None:
        """Drop an opened video, so the next `video(name)` reads the folder again (after a rebuild)."""
        self._open.pop(name, None)

    def _load(self, name: str) -> CachedVideo:
        folder = self.root / name
        for _ in range(2):  # a rebuild may swap the folder between reading the manifest and the arrays
            manifest = _read_manifest(folder)
            if manifest is None or manifest.get("version") != CACHE_VERSION:
                break
            try:
                frames = np.load(folder / FRAMES_FILE, mmap_mode="r")
                masks = np.load(folder / MASKS_FILE, mmap_mode="r") if any(manifest["has_mask"]) else None
            except (OSError, ValueError):
                continue
            stems = manifest["stems"]
            if frames.shape[0] == len(stems) and (masks is None or masks.shape[0] == len(stems)):
                return CachedVideo(name=name, folder=folder, stems=stems,
                                   has_mask=np.array(manifest["has_mask"], dtype=bool), frames=frames,
                                   masks=masks, key=dict(zip(stems, manifest["key"])))
        raise VcsegError(f"{folder}: video {name!r} is not in the frame cache at short side "
                         f"{self.short_side}; build it with build_cache (vcseg ingest --cache)")


# ---- the clip loader training and prediction call ------------------------------------------------

@dataclass(frozen=True)
class Clip:
    """Frames of one video at one short side, with their masks."""

    video: str
    stems: list[str]
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    masks: np.ndarray  # (T, H, W) uint8 ids; 0 where the frame has no mask
    has_mask: np.ndarray  # (T,) bool
    from_cache: bool


def load_clip(video: VideoFiles, stems: Sequence[str], short_side: int,
              cache: FrameCache | None = None) -> Clip:
    """Load the frames `stems` of `video` resized to `short_side`, from `cache` when it can.

    The cache serves the clip when it holds the video and its entries for these stems match the
    source files' sizes and mtimes; otherwise the files are decoded and resized the same way, so
    both paths give equal arrays.
    """
    stems = list(stems)
    missing = [stem for stem in stems if stem not in video.frames]
    if missing:
        raise VcsegError(f"video {video.name!r}: no frame file for stems {missing[:3]}; "
                         "pick stems from the video's frames")
    if cache is not None and cache.short_side == short_side and video.name in cache:
        try:
            cached = cache.video(video.name)
        except VcsegError:
            cached = None
        if cached is not None and not cached.is_fresh(video, stems):
            cache.forget(video.name)  # maybe rebuilt since it was opened: look again once
            try:
                cached = cache.video(video.name)
            except VcsegError:
                cached = None
        if cached is not None and cached.is_fresh(video, stems):
            index = [cached.index(stem) for stem in stems]
            # fancy indexing copies out of the memory map (np.array on a memmap would be ~100x slower)
            frames = np.asarray(cached.frames[index])
            if cached.masks is not None:
                masks = np.asarray(cached.masks[index])
            else:
                masks = np.zeros(frames.shape[:3], dtype=np.uint8)
            return Clip(video.name, stems, frames, masks, cached.has_mask[index].copy(), True)

    pairs = [load_frame_pair(video.frames[stem], video.masks.get(stem), short_side) for stem in stems]
    sizes = {frame.shape for frame, _ in pairs}
    if len(sizes) > 1:
        raise VcsegError(f"video {video.name!r}: frames {stems} differ in size ({sorted(sizes)}); "
                         "all frames of a video must share one size: re-export them")
    frames = np.stack([frame for frame, _ in pairs])
    masks = np.stack([mask if mask is not None else np.zeros(frame.shape[:2], dtype=np.uint8)
                      for frame, mask in pairs])
    has_mask = np.array([mask is not None for _, mask in pairs], dtype=bool)
    return Clip(video.name, stems, frames, masks, has_mask, False)
