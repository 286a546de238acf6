"""`visualize`: overlay videos (MP4) and contact sheets (PNG) of predicted masks, optionally
beside the ground truth with the errors coloured.

    summary = visualize("preds", "data/val", "viz", gt_root="data/val")
    # viz/<video>.mp4: every frame, ids filled and outlined in the DAVIS palette, numbered;
    #                  with gt_root the ground truth beside it, errors in their own colours
    # viz/<video>.png: 8 evenly spaced frames of the same, downscaled, in a grid

GT ids are matched to predicted ids per video as the tianchi scorer matches them (Hungarian
assignment on the video-level mean IoU over the frames that have a GT mask), so an "id switch"
here is a GT pixel the scorer would count against that person.

Frames are drawn at 1/shrink of their size (shrink 1, 2, 4 or 8: the JPEG decoder scales while
decoding, and masks are sampled every shrink-th pixel); by default the smallest shrink that
brings the longer side to at most MAX_SIDE pixels. Each video's masks are held in memory at
that size while its ids are matched (at full size only in frames whose GT holds 255, until the
video decides what 255 means).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from zlib_ng import zlib_ng

from vcseg.errors import VcsegError
from vcseg.io.atomic import atomic_path
from vcseg.io.frames import image_size, jpeg_size, read_frame
from vcseg.io.layouts import find_dataset, find_mask_videos
from vcseg.io.masks import read_mask
from vcseg.io.outputs import check_writable_dir
from vcseg.metrics.matching import hungarian_match
from vcseg.metrics.protocols import VOID_ID, FrameCounts, cut_void, video_pair_j
from vcseg.viz.draw import (ERROR_NAMES, LEGEND_HEIGHT, bounding_box, draw_ids, error_classes, even, legend_strip,
                            paste, text_patch)
from vcseg.viz.mp4 import VIZ_TAG, Mp4Writer, to_yuv, written_by_viz

MAX_SIDE = 640  # default: frames are shrunk until their longer side is at most this
SHRINKS = (1, 2, 4, 8)  # the scales libjpeg decodes at directly
# OpenCV's flags for a JPEG decoded at 1/shrink as stored (no EXIF rotation, as PIL reads it), into
# RGB where OpenCV can (IMREAD_COLOR_RGB, OpenCV >= 4.11), else into BGR
_RGB = getattr(cv2, "IMREAD_COLOR_RGB", None)
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
if _RGB is not None:
    _REDUCED = {shrink: flag & ~cv2.IMREAD_COLOR | _RGB for shrink, flag in _REDUCED.items()}
_REDUCED = {shrink: flag | cv2.IMREAD_IGNORE_ORIENTATION for shrink, flag in _REDUCED.items()}
_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
SHEET_FRAMES = 8
SHEET_PANEL_WIDTH = 240  # a contact-sheet panel is at most this wide
READ_THREADS = 2  # PIL decodes without the GIL: reading overlaps drawing and encoding
MAX_THREADS = 4  # threads per video when cores outnumber the videos drawn in parallel
_PREFETCH = 4


@dataclass(frozen=True)
class VideoInputs:
    """One video's files in frame order: frames, predictions, and GT masks (None: no GT for that
    frame; gts None: no ground truth at all)."""

    name: str
    stems: tuple[str, ...]
    frames: tuple[Path, ...]
    preds: tuple[Path, ...]
    gts: tuple[Path | None, ...] | None = None


@dataclass(frozen=True)
class VideoViz:
    """What `render_video` wrote for one video."""

    name: str
    frames: int
    video: Path
    sheet: Path
    size: tuple[int, int]  # (width, height) of the MP4
    shrink: int
    matches: dict[int, int] | None = None  # GT id -> matched predicted id (None: no ground truth)
    error_frames: dict[str, int] = field(default_factory=dict)  # error name -> frames showing it


@dataclass(frozen=True)
class VizSummary:
    """What `visualize` wrote, and what it noticed on the way."""

    out: Path
    videos: list[VideoViz]
    warnings: list[str]


def worker_count(workers: int | None, videos: int) -> int:
    """The processes `visualize` draws `videos` videos with: `workers`, or one per core (None), at
    most one per video."""
    return max(1, min(workers or os.cpu_count() or 1, videos))


def auto_shrink(height: int, width: int, max_side: int = MAX_SIDE) -> int:
    """The smallest of SHRINKS that brings max(height, width) to at most `max_side` (else the largest)."""
    return next((s for s in SHRINKS if math.ceil(max(height, width) / s) <= max_side), SHRINKS[-1])


def visualize(pred_root: str | os.PathLike[str], frames_root: str | os.PathLike[str],
              out: str | os.PathLike[str], *, gt_root: str | os.PathLike[str] | None = None,
              videos: Iterable[str] | None = None, fps: float = 12.0, shrink: int | None = None,
              workers: int | None = None, progress: Callable[[int, int], None] | None = None) -> VizSummary:
    """Write `out/<video>.mp4` and `out/<video>.png` for every predicted video (or those in `videos`).

    pred_root: PRED_ROOT/<video>/<stem>.png; frames_root: the dataset the predictions were made
    from (any layout `find_dataset` knows); gt_root: ground truth (a dataset root or
    GT/<video>/<stem>.png), drawn beside the prediction with the errors coloured.
    shrink: 1, 2, 4 or 8 (None: `auto_shrink`). workers: processes drawing videos in parallel
    (None: one per core, at most one per video; 1: in this process; `worker_count`); each
    video gets the cores left over (one thread where every core has its process).
    progress(done, total) counts frames: called after every frame in this process, after every
    video with workers.
    Only those two files per video are written; one of the same name that an earlier `vcseg viz`
    did not write is refused before any work.
    """
    pred_root, frames_root, out = Path(pred_root), Path(frames_root), Path(out)
    if fps <= 0:
        raise VcsegError(f"--fps must be positive, got {fps}")
    if shrink is not None and shrink not in SHRINKS:
        raise VcsegError(f"--shrink must be one of {', '.join(map(str, SHRINKS))}, got {shrink}")
    if workers is not None and workers < 1:
        raise VcsegError(f"--workers must be at least 1, got {workers}")
    check_writable_dir(out, "--out")
    jobs, warnings = plan_videos(pred_root, frames_root, gt_root, videos)
    for job in jobs:
        for target in (out / f"{job.name}.mp4", out / f"{job.name}.png"):
            _check_replaceable(target)
    workers = worker_count(workers, len(jobs))
    threads = min(max(1, (os.cpu_count() or 1) // workers), MAX_THREADS)
    total, done = sum(len(job.stems) for job in jobs), 0

    def advance(frames: int = 1) -> None:
        nonlocal done
        done += frames
        if progress is not None:
            progress(done, total)

    if workers == 1:
        written = [render_video(job, out, fps=fps, shrink=shrink, threads=threads, on_frame=advance)
                   for job in jobs]
        return VizSummary(out=out, videos=written, warnings=warnings)
    results: dict[str, VideoViz] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        # the most work first (bytes to decode: frames and masks), so that no process is left
        # with a long video at the end while the others wait
        futures = {pool.submit(render_video, job, out, fps=fps, shrink=shrink, threads=threads): job
                   for job in sorted(jobs, key=_input_bytes, reverse=True)}
        try:
            for future in as_completed(futures):
                video = future.result()
                results[video.name] = video
                advance(video.frames)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return VizSummary(out=out, videos=[results[job.name] for job in jobs], warnings=warnings)


def _input_bytes(job: VideoInputs) -> int:
    """The bytes of a video's files, which its drawing time follows (decoding dominates)."""
    return sum(path.stat().st_size for paths in (job.frames, job.preds, job.gts or ()) for path in paths
               if path is not None)


def plan_videos(pred_root: Path, frames_root: Path, gt_root: str | os.PathLike[str] | None,
                videos: Iterable[str] | None) -> tuple[list[VideoInputs], list[str]]:
    """The inputs of every video to draw, and warnings; VcsegError naming the file for bad input."""
    pred_videos = find_mask_videos(pred_root)
    dataset = find_dataset(frames_root)
    gt_videos = find_mask_videos(gt_root) if gt_root is not None else None
    names = list(dict.fromkeys(videos)) if videos else sorted(pred_videos)
    if not names:
        raise VcsegError(f"{pred_root}: no prediction folders; expected {pred_root}/<video>/<frame>.png")
    jobs, warnings = [], []
    for name in names:
        if name not in pred_videos:
            raise VcsegError(f"{pred_root / name}: no prediction folder for video {name}; predict it, "
                             "or leave it out of --videos")
        try:
            frames = dataset.video(name).frames
        except KeyError:
            frames = {}
        if not frames:
            raise VcsegError(f"{dataset.frames_root / name}: no frames for video {name}; give --frames the "
                             "dataset the predictions were made from")
        preds = pred_videos[name]
        missing = [stem for stem in frames if stem not in preds]
        if missing:
            raise VcsegError(f"{pred_root / name / missing[0]}.png: prediction missing for frame "
                             f"{frames[missing[0]]} ({len(missing)} missing in {name}); predict every frame")
        extra = len(set(preds) - set(frames))
        if extra:
            warnings.append(f"{pred_root / name}: {extra} prediction file(s) match no frame; not drawn")
        gts = None
        if gt_videos is not None:
            gt_masks = gt_videos.get(name, {})
            if not gt_masks:
                raise VcsegError(f"{Path(gt_root) / name}: no ground truth for video {name}; drop --gt, or "
                                 "choose videos that have it with --videos")
            gts = tuple(gt_masks.get(stem) for stem in frames)
        jobs.append(VideoInputs(name=name, stems=tuple(frames), frames=tuple(frames.values()),
                                preds=tuple(preds[stem] for stem in frames), gts=gts))
    return jobs, warnings


def _check_replaceable(target: Path) -> None:
    if not target.exists() and not target.is_symlink():
        return
    ours = target.is_file() and not target.is_symlink() and (
        written_by_viz(target) if target.suffix == ".mp4" else _sheet_by_viz(target))
    if not ours:
        raise VcsegError(f"{target}: exists and was not written by vcseg viz; move it away, or choose "
                         "another --out")


def _sheet_by_viz(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            return image.info.get("Software") == VIZ_TAG  # a chunk before the pixels: none decoded
    except Exception:
        return False


# ---- one video ----------------------------------------------------------------------------------

def match_ids(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> dict[int, int]:
    """{GT id: predicted id} as the tianchi scorer matches them over these frames (full-size maps).

    GT 255 is void or person 1 as the scorer decides (`tianchi_ground_truth`).
    """
    return _display_masks([_scored_frame(pred, gt, 1) for pred, gt in zip(preds, gts)], with_gt=True)[0]


@dataclass(frozen=True)
class _FrameMasks:
    """One frame's masks at display size."""

    pred: np.ndarray
    gt: np.ndarray | None = None  # as the scorer reads it (binary 0/255 -> 1), void kept
    void: np.ndarray | None = None  # void pixels (bool), left out of the errors
    box: tuple[slice, slice] | None = None  # holds every person of pred and gt (None: none there)


@dataclass(frozen=True)
class _ReadFrame:
    """What the first pass keeps of a frame: its masks at display size and, with ground truth, the
    `FrameCounts` of (prediction, GT as read) and the full-size maps where the GT holds 255."""

    masks: _FrameMasks
    counts: FrameCounts | None = None
    full: tuple[np.ndarray, np.ndarray] | None = None  # (prediction, GT as read)


def _scored_frame(pred: np.ndarray, gt: np.ndarray, shrink: int) -> _ReadFrame:
    """A frame with ground truth (full-size maps): its counts and display masks, from the box of its
    persons; the full maps are kept only if the GT holds 255."""
    box = bounding_box(pred | gt)  # persons cover a small part of a frame: the work is done there
    counts = _frame_counts(pred, gt, box)
    holds_255 = bool((counts.codes % 256 == VOID_ID).any())
    masks = _FrameMasks(pred=_sample_in(box, pred, shrink), gt=_sample_in(box, gt, shrink), box=_shrunk(box, shrink))
    return _ReadFrame(masks, counts, full=(pred, gt) if holds_255 else None)


def _display_masks(read: Sequence[_ReadFrame], shrink: int = 1,
                   with_gt: bool = True) -> tuple[dict[int, int] | None, list[_FrameMasks]]:
    """The GT -> prediction matching (None without GT) and every frame's masks at display size.

    GT 255 is decided as `tianchi_ground_truth` decides it, over the whole video: person 1 where
    it is the only GT id, else void (cut out of the prediction). Frames without 255 are the same
    either way, so only those holding it are converted and counted again.
    """
    if not with_gt:
        return None, [frame.masks for frame in read]
    binary = set().union(*(frame.counts.gt_ids() for frame in read if frame.counts is not None)) == {VOID_ID}
    masks, counts = [], []
    for frame in read:
        if frame.full is not None:
            frame = _as_scored(frame, binary, shrink)
        masks.append(frame.masks)
        if frame.counts is not None:
            counts.append(frame.counts)
    return _match(counts), masks


def _as_scored(frame: _ReadFrame, binary: bool, shrink: int) -> _ReadFrame:
    """A frame whose GT holds 255 with the 255 as tianchi scores it: person 1 (binary masks), or void."""
    pred, gt = frame.full
    if binary:
        gt = (gt == VOID_ID).astype(np.uint8)
        masks = _FrameMasks(pred=frame.masks.pred, gt=_sample(gt, shrink), box=frame.masks.box)
        return _ReadFrame(masks, _frame_counts(pred, gt, bounding_box(pred | gt)))
    void = gt == VOID_ID
    masks = _FrameMasks(pred=frame.masks.pred, gt=frame.masks.gt, void=_sample(void, shrink), box=frame.masks.box)
    cut = cut_void([pred], [void])[0]
    return _ReadFrame(masks, _frame_counts(cut, gt, bounding_box(cut | gt)))


def _match(counts: Sequence[FrameCounts]) -> dict[int, int]:
    gt_ids = sorted(set().union(*(frame.gt_ids() for frame in counts)) - {VOID_ID})
    pred_ids = sorted(set().union(*(frame.pred_ids() for frame in counts)))
    if not gt_ids or not pred_ids:
        return {}
    assignment = hungarian_match(video_pair_j(counts, pred_ids, gt_ids).mean(axis=2))
    return {gt_ids[g]: pred_ids[p] for g, p in assignment.items()}


@dataclass(frozen=True)
class _Layout:
    """Where things go in an MP4 frame: the prediction panel, the GT panel right of it, the legend
    under both, black padding to even sizes."""

    panel_h: int
    panel_w: int
    with_gt: bool
    frame_size: tuple[int, int]  # (H, W) of the frames as stored

    @property
    def width(self) -> int:  # of the panels, without padding
        return self.panel_w * (2 if self.with_gt else 1)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the MP4: the panels and the legend, padded to even."""
        return even(self.width), even(self.panel_h + (LEGEND_HEIGHT if self.with_gt else 0))

    def panels(self, canvas: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        pred = canvas[:self.panel_h, :self.panel_w]
        gt = canvas[:self.panel_h, self.panel_w:self.width] if self.with_gt else None
        return pred, gt


@functools.lru_cache(maxsize=8)
def _legend(width: int, panel_w: int) -> np.ndarray:
    return legend_strip(width, panel_w)


def render_video(inputs: VideoInputs, out_dir: str | os.PathLike[str], *, fps: float = 12.0,
                 shrink: int | None = None, threads: int = READ_THREADS,
                 on_frame: Callable[[], None] | None = None) -> VideoViz:
    """Write `out_dir/<name>.mp4` and `out_dir/<name>.png` for one video (atomically) and say what.

    Two passes: every mask is read (and, with ground truth, the ids matched), then every frame is
    decoded, drawn and encoded. threads > 1: reading and drawing run in that many threads and
    encoding in x264's own, overlapping (PIL and PyAV release the GIL); 1: everything in this
    thread, one after the other (the cheapest where every core already has a video).
    """
    out_dir = Path(out_dir)
    height, width = image_size(inputs.frames[0])
    shrink = shrink or auto_shrink(height, width)
    n = len(inputs.stems)
    with ThreadPoolExecutor(threads) if threads > 1 else contextlib.nullcontext() as pool:
        read = list(_in_order(pool, functools.partial(_read_masks, inputs, (height, width), shrink), range(n)))
        matches, masks = _display_masks(read, shrink, with_gt=inputs.gts is not None)
        del read
        layout = _Layout(*masks[0].pred.shape, with_gt=inputs.gts is not None, frame_size=(height, width))
        matched = np.zeros(256, dtype=np.uint8)  # GT id -> its predicted id
        for gt_id, pred_id in (matches or {}).items():
            matched[gt_id] = pred_id
        sheet_at = set(np.linspace(0, n - 1, min(SHEET_FRAMES, n)).round().astype(int).tolist())
        draw = functools.partial(_draw_frame, inputs, masks, layout, shrink, matched, sheet_at)
        drawn = _in_order(pool, draw, range(n))
        video_path, sheet_path = out_dir / f"{inputs.name}.mp4", out_dir / f"{inputs.name}.png"
        tiles: list[np.ndarray] = []
        error_counts = np.zeros(4, dtype=np.int64)  # frames showing each error class
        encoder_threads = 1 if threads == 1 else 0  # 0: x264's own choice
        with atomic_path(video_path) as tmp, Mp4Writer(tmp, *layout.size, fps, threads=encoder_threads) as writer:
            for frame, tile, seen in drawn:
                writer.write(frame)
                error_counts += seen
                if tile is not None:
                    tiles.append(tile)
                if on_frame is not None:
                    on_frame()
    _write_sheet(sheet_path, tiles, layout)
    error_frames = {name: int(error_counts[kind]) for kind, name in ERROR_NAMES.items()}
    return VideoViz(name=inputs.name, frames=n, video=video_path, sheet=sheet_path, size=layout.size, shrink=shrink,
                    matches=matches, error_frames=error_frames if matches is not None else {})


def _read_masks(inputs: VideoInputs, size: tuple[int, int], shrink: int, index: int) -> _ReadFrame:
    """Frame `index`'s prediction and GT (if any), checked against the video's frame size (each
    frame's own size is checked when it is decoded), kept at display size (`_scored_frame`): the
    full-size maps are let go at once, which spares memory and the time to fault it in."""
    pred = read_mask(inputs.preds[index])
    if pred.shape != size:
        raise VcsegError(f"{inputs.preds[index]}: prediction is {pred.shape[1]}x{pred.shape[0]} but frame "
                         f"{inputs.frames[index]} is {size[1]}x{size[0]}; predict at the frame's own size")
    gt_path = inputs.gts[index] if inputs.gts is not None else None
    if gt_path is None:
        return _ReadFrame(_FrameMasks(pred=_sample(pred, shrink)))
    gt = read_mask(gt_path, binary_to_id=False)  # 255 kept: the scorer decides what it means
    if gt.shape != size:
        raise VcsegError(f"{gt_path}: ground truth is {gt.shape[1]}x{gt.shape[0]} but frame "
                         f"{inputs.frames[index]} is {size[1]}x{size[0]}; give the --gt of this dataset")
    return _scored_frame(pred, gt, shrink)


def _frame_counts(pred: np.ndarray, gt: np.ndarray, box: tuple[slice, slice] | None) -> FrameCounts:
    """`FrameCounts.of(pred, gt)`, counted inside `box`, which holds every person of either map
    (None: none there), the background outside added after."""
    if box is None:
        return FrameCounts(codes=np.zeros(1, dtype=np.intp), counts=np.array([pred.size]))
    counts = FrameCounts.of(pred[box], gt[box])
    outside = pred.size - pred[box].size
    if outside == 0:
        return counts
    if counts.codes[0] == 0:  # background inside the box too
        return FrameCounts(codes=counts.codes, counts=np.concatenate([[counts.counts[0] + outside], counts.counts[1:]]))
    return FrameCounts(codes=np.concatenate([[0], counts.codes]), counts=np.concatenate([[outside], counts.counts]))


def _sample(ids: np.ndarray, shrink: int) -> np.ndarray:
    return ids if shrink == 1 else np.ascontiguousarray(ids[::shrink, ::shrink])


def _sample_in(box: tuple[slice, slice] | None, ids: np.ndarray, shrink: int) -> np.ndarray:
    """`_sample(ids, shrink)` where `box` holds every non-zero id (None: none): only it is copied."""
    if shrink == 1:
        return ids
    sampled = np.zeros((-(-ids.shape[0] // shrink), -(-ids.shape[1] // shrink)), dtype=ids.dtype)
    inside = _shrunk(box, shrink)
    if inside is not None:
        rows, cols = (slice(axis.start * shrink, axis.stop * shrink, shrink) for axis in inside)
        sampled[inside] = ids[rows, cols]
    return sampled


def _shrunk(box: tuple[slice, slice] | None, shrink: int) -> tuple[slice, slice] | None:
    """The rows and columns of `ids[::shrink, ::shrink]` that sample `box` of `ids` (None: none)."""
    if box is None:
        return None
    rows, cols = (slice(-(-int(axis.start) // shrink), -(-int(axis.stop) // shrink)) for axis in box)
    return (rows, cols) if rows.stop > rows.start and cols.stop > cols.start else None


def _draw_frame(inputs: VideoInputs, masks: list[_FrameMasks], layout: _Layout, shrink: int,
                matched: np.ndarray, sheet_at: set[int], index: int):
    """One MP4 frame, ready to encode; its contact-sheet tile if the sheet shows it (else None);
    and which error classes it shows (`(4,)` 0/1). Runs in a worker thread."""
    frame = _read_frame_shrunk(inputs.frames[index], shrink, layout.frame_size, (layout.panel_h, layout.panel_w))
    frame_masks = masks[index]
    canvas = _thread_canvas(layout)
    pred_panel, gt_panel = layout.panels(canvas)
    seen = np.zeros(4, dtype=np.int64)
    errors = box = None
    if frame_masks.gt is not None:
        pred, gt = frame_masks.pred, frame_masks.gt
        if frame_masks.void is not None:
            pred = cut_void([pred], [frame_masks.void])[0]
            gt = np.where(frame_masks.void, 0, gt).astype(np.uint8)
        box = frame_masks.box  # errors lie where some person is
        if box is not None:
            classes = error_classes(pred[box], gt[box], matched)
            errors = np.zeros(pred.shape, dtype=np.uint8)
            errors[box] = classes
            for kind in range(len(seen)):  # a comparison per class: half the time of a bincount
                seen[kind] = (classes == kind).any()
    draw_ids(pred_panel, frame, frame_masks.pred, errors=errors, error_box=box)
    if gt_panel is not None:
        if frame_masks.gt is None:
            np.copyto(gt_panel, frame)
            paste(gt_panel, text_patch("no ground truth"), 0, 0)
        else:
            draw_ids(gt_panel, frame, frame_masks.gt, skip_labels=(VOID_ID,))
    tile = (_sheet_tile(canvas[:layout.panel_h, :layout.width], inputs.stems[index], sheet_shrink(layout.panel_w))
            if index in sheet_at else None)
    return to_yuv(canvas), tile, seen


_per_thread = threading.local()


def _thread_canvas(layout: _Layout) -> np.ndarray:
    """This thread's RGB picture for `layout`, legend drawn: reused frame after frame (the panels are
    redrawn whole each time)."""
    held = getattr(_per_thread, "canvas", None)
    if held is None or held[0] != layout:
        width, height = layout.size
        pixels = np.zeros((height, width, 3), dtype=np.uint8)
        if layout.with_gt:
            pixels[layout.panel_h:layout.panel_h + LEGEND_HEIGHT, :layout.width] = _legend(layout.width, layout.panel_w)
        held = _per_thread.canvas = (layout, pixels)
    return held[1]


def _read_frame_shrunk(path: Path, shrink: int, full: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The frame, checked to be `full` (H, W), at `size` (`full` / `shrink` rounded up), decoded at that
    scale where the decoder can (libjpeg's DCT scaling by 1/2, 1/4, 1/8).

    A shrunk JPEG is decoded by OpenCV, straight into an array: the same libjpeg pixels as PIL's
    draft mode in half the time (PIL packs its decoded pixels into the array in a second pass).
    Any other file, or a JPEG not ending in its end marker (truncated: OpenCV would draw it grey
    where PIL refuses it), goes to PIL."""
    if shrink == 1:
        frame = read_frame(path)
        _check_frame_size(path, frame.shape[:2], full)
        return frame
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        read_frame(path)  # raises VcsegError naming the file
        raise
    _check_frame_size(path, jpeg_size(data) or image_size(path), full)  # from the header
    if bytes(data[:2]) == _JPEG_START and bytes(data[-2:]) == _JPEG_END:
        frame = cv2.imdecode(data, _REDUCED[shrink])
        if frame is not None and frame.shape == (*size, 3):
            return frame if _RGB is not None else cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    try:
        with Image.open(path) as image:
            image.draft("RGB", (max(full[1] // shrink, 1), max(full[0] // shrink, 1)))  # rounded down: PIL
            image.load()  # then scales by `shrink` itself (rounded up, it would take a smaller scale)
            if image.mode != "RGB":
                image = image.convert("RGB")
            if image.size != (size[1], size[0]):  # a decoder that could not scale while decoding
                image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(image)
    except Exception as error:
        read_frame(path)  # raises VcsegError naming the file for anything it cannot decode
        raise VcsegError(f"{path}: cannot decode the frame at 1/{shrink} size ({error}); "
                         "pass --shrink 1") from None


def _check_frame_size(path: Path, found: tuple[int, int], full: tuple[int, int]) -> None:
    if found != full:
        raise VcsegError(f"{path}: frame is {found[1]}x{found[0]} but the video's masks are {full[1]}x{full[0]}; "
                         "give --frames the dataset the predictions were made from")


def _in_order(pool: ThreadPoolExecutor | None, function: Callable, items: Iterable) -> Iterator:
    """`map(function, items)`: in this thread without a pool, else run ahead in it (`_prefetch`)."""
    return map(function, items) if pool is None else _prefetch(pool, function, items)


def _prefetch(pool: ThreadPoolExecutor, function: Callable, items: Iterable, depth: int = _PREFETCH) -> Iterator:
    """`map(function, items)` run ahead in `pool`, at most `depth` results waiting."""
    items = iter(items)
    pending: deque[Future] = deque(pool.submit(function, item) for item in itertools.islice(items, depth))
    while pending:
        result = pending.popleft().result()
        for item in itertools.islice(items, 1):
            pending.append(pool.submit(function, item))
        yield result


def sheet_shrink(panel_w: int) -> int:
    """The factor a contact-sheet tile is reduced by: panels at most SHEET_PANEL_WIDTH wide."""
    return max(1, math.ceil(panel_w / SHEET_PANEL_WIDTH))


def sheet_layout(panel_h: int, panel_w: int, tiles: int, with_gt: bool) -> tuple[int, int, int, int]:
    """(tile height, tile width, columns, rows) of a contact sheet of `tiles` frames; the sheet is
    columns * tile width wide and rows * tile height high, plus LEGEND_HEIGHT with ground truth."""
    factor = sheet_shrink(panel_w)
    tile_h, tile_w = math.ceil(panel_h / factor), math.ceil(panel_w * (2 if with_gt else 1) / factor)
    columns = min(tiles, 2 if with_gt else 4)
    return tile_h, tile_w, columns, math.ceil(tiles / columns)


def _sheet_tile(panels: np.ndarray, stem: str, factor: int) -> np.ndarray:
    """The panels of one frame reduced by `factor` (box filter), labelled with the frame's stem."""
    tile = reduce_rgb(panels, factor)
    paste(tile, text_patch(stem), 0, 0)
    return tile


def reduce_rgb(rgb: np.ndarray, factor: int) -> np.ndarray:
    """`(H, W, 3)` uint8 `rgb` reduced by `factor` as PIL's `Image.reduce` does it (the mean of each
    factor x factor block, rounded half up; partial blocks at the edges), as a new array.

    Halving an image of even sizes, OpenCV's area resize computes the same (a + b + c + d + 2) >> 2
    in a seventh of PIL's time (PIL also copies the pixels in and out); the rest goes to PIL."""
    height, width = rgb.shape[:2]
    if factor == 2 and height % 2 == 0 and width % 2 == 0:
        return cv2.resize(rgb, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    return np.array(Image.fromarray(rgb).reduce(factor)) if factor > 1 else rgb.copy()


def _write_sheet(path: Path, tiles: list[np.ndarray], layout: _Layout) -> None:
    """The sampled frames in a grid, the legend under them (GT mode)."""
    tile_h, tile_w, columns, rows = sheet_layout(layout.panel_h, layout.panel_w, len(tiles), layout.with_gt)
    legend_h = LEGEND_HEIGHT if layout.with_gt else 0
    sheet = np.zeros((rows * tile_h + legend_h, columns * tile_w, 3), dtype=np.uint8)
    for k, tile in enumerate(tiles):
        row, column = divmod(k, columns)
        sheet[row * tile_h:(row + 1) * tile_h, column * tile_w:(column + 1) * tile_w] = tile
    if layout.with_gt:
        sheet[rows * tile_h:] = _legend(sheet.shape[1], tile_w // 2)
    with atomic_path(path) as tmp:
        tmp.write_bytes(png_bytes(sheet, {"Software": VIZ_TAG}))


def png_bytes(rgb: np.ndarray, text: dict[str, str]) -> bytes:
    """An RGB PNG of `(H, W, 3)` uint8 `rgb`, with `text` in tEXt chunks before the pixels.

    Written here rather than by PIL, for speed (a third of PIL's time at compress_level 1, as
    small): every row takes PNG's "Sub" filter (a byte minus the one a pixel to its left), which
    numpy computes at once, and zlib-ng codes the rows with Huffman codes alone (photographs
    offer few long matches to look for), the same bytes as stock zlib in a third of its time.
    """
    height, width = rgb.shape[:2]
    pixels = np.ascontiguousarray(rgb).reshape(height, width * 3)
    rows = np.empty((height, 1 + width * 3), dtype=np.uint8)
    rows[:, 0] = 1  # the filter type of each row: Sub
    rows[:, 1:4] = pixels[:, :3]
    np.subtract(pixels[:, 3:], pixels[:, :-3], out=rows[:, 4:])  # modulo 256, as PNG wants
    compressor = zlib_ng.compressobj(1, zlib_ng.DEFLATED, 15, 9, zlib_ng.Z_HUFFMAN_ONLY)
    image_data = compressor.compress(rows) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib_ng.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, no interlace
    texts = b"".join(chunk(b"tEXt", f"{key}\0{value}".encode("latin-1")) for key, value in text.items())
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + texts + chunk(b"IDAT", image_data) + chunk(b"IEND", b"")
