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
full size while its ids are matched.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from vcseg.errors import VcsegError
from vcseg.io.atomic import atomic_path
from vcseg.io.frames import image_size, read_frame
from vcseg.io.layouts import find_dataset, find_mask_videos
from vcseg.io.masks import read_mask
from vcseg.io.outputs import check_writable_dir
from vcseg.metrics.matching import hungarian_match
from vcseg.metrics.protocols import VOID_ID, FrameCounts, cut_void, tianchi_ground_truth, video_pair_j
from vcseg.viz.draw import (ERROR_NAMES, LEGEND_HEIGHT, bounding_box, draw_ids, error_classes, even, legend_strip,
                            paste, text_patch)
from vcseg.viz.mp4 import VIZ_TAG, Mp4Writer, rgb_frame, to_yuv, written_by_viz

MAX_SIDE = 640  # default: frames are shrunk until their longer side is at most this
SHRINKS = (1, 2, 4, 8)  # the scales libjpeg decodes at directly
SHEET_FRAMES = 8
SHEET_PANEL_WIDTH = 240  # a contact-sheet panel is at most this wide
READ_THREADS = 2  # PIL decodes without the GIL: reading overlaps drawing and encoding
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
    (None: one per core, at most one per video; 1: in this process). progress(done, total)
    counts frames: called after every frame in this process, after every video with workers.
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
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    total, done = sum(len(job.stems) for job in jobs), 0

    def advance(frames: int = 1) -> None:
        nonlocal done
        done += frames
        if progress is not None:
            progress(done, total)

    if workers == 1:
        written = [render_video(job, out, fps=fps, shrink=shrink, on_frame=advance) for job in jobs]
        return VizSummary(out=out, videos=written, warnings=warnings)
    results: dict[str, VideoViz] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        # longest videos first, so that no process is left with a long one at the end
        futures = {pool.submit(render_video, job, out, fps=fps, shrink=shrink): job
                   for job in sorted(jobs, key=lambda job: len(job.stems), reverse=True)}
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
            return getattr(image, "text", {}).get("Software") == VIZ_TAG
    except Exception:
        return False


# ---- one video ----------------------------------------------------------------------------------

def match_ids(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> dict[int, int]:
    """{GT id: predicted id} as the tianchi scorer matches them over these frames (full-size maps).

    GT 255 is void or person 1 as the scorer decides (`tianchi_ground_truth`).
    """
    return _match(_scored(preds, gts, None)[2])


def _scored(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], counts: list[FrameCounts] | None):
    """The GT frames as tianchi scores them, their void masks (None: no void) and the pair counts.

    counts: `FrameCounts` of (pred, GT as read), reused when the GT holds no 255 (nothing to convert).
    """
    if counts is not None and not any((frame.codes % 256 == VOID_ID).any() for frame in counts):
        return list(gts), None, counts
    gts, voids = tianchi_ground_truth(gts)
    return gts, voids, [FrameCounts.of(pred, gt) for pred, gt in zip(cut_void(preds, voids), gts)]


def _match(counts: Sequence[FrameCounts]) -> dict[int, int]:
    gt_ids = sorted(set().union(*(frame.gt_ids() for frame in counts)) - {VOID_ID})
    pred_ids = sorted(set().union(*(frame.pred_ids() for frame in counts)))
    if not gt_ids or not pred_ids:
        return {}
    assignment = hungarian_match(video_pair_j(counts, pred_ids, gt_ids).mean(axis=2))
    return {gt_ids[g]: pred_ids[p] for g, p in assignment.items()}


@dataclass(frozen=True)
class _FrameMasks:
    """One frame's masks at display size."""

    pred: np.ndarray
    gt: np.ndarray | None = None  # as the scorer reads it (binary 0/255 -> 1), void kept
    void: np.ndarray | None = None  # void pixels (bool), left out of the errors


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
                 shrink: int | None = None, on_frame: Callable[[], None] | None = None) -> VideoViz:
    """Write `out_dir/<name>.mp4` and `out_dir/<name>.png` for one video (atomically) and say what.

    Two passes: every mask is read (and, with ground truth, the ids matched), then every frame is
    decoded, drawn and encoded. Reading and drawing run in READ_THREADS threads, encoding in
    x264's own, so the cores are kept busy.
    """
    out_dir = Path(out_dir)
    height, width = image_size(inputs.frames[0])
    shrink = shrink or auto_shrink(height, width)
    n = len(inputs.stems)
    with ThreadPoolExecutor(READ_THREADS) as pool:
        read = list(pool.map(functools.partial(_read_masks, inputs, (height, width)), range(n)))
        matches, masks = _display_masks(read, shrink, with_gt=inputs.gts is not None)
        del read
        layout = _Layout(*masks[0].pred.shape, with_gt=inputs.gts is not None, frame_size=(height, width))
        matched = np.zeros(256, dtype=np.uint8)  # GT id -> its predicted id
        for gt_id, pred_id in (matches or {}).items():
            matched[gt_id] = pred_id
        sheet_at = set(np.linspace(0, n - 1, min(SHEET_FRAMES, n)).round().astype(int).tolist())
        draw = functools.partial(_draw_frame, inputs, masks, layout, shrink, matched, sheet_at)
        drawn = _prefetch(pool, draw, range(n))
        video_path, sheet_path = out_dir / f"{inputs.name}.mp4", out_dir / f"{inputs.name}.png"
        tiles: list[np.ndarray] = []
        error_counts = np.zeros(4, dtype=np.int64)  # frames showing each error class
        with atomic_path(video_path) as tmp, Mp4Writer(tmp, *layout.size, fps) as writer:
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


def _read_masks(inputs: VideoInputs, size: tuple[int, int], index: int):
    """Frame `index`'s prediction and GT (None) at full size, checked against the video's frame size
    (each frame's own size is checked when it is decoded), and their `FrameCounts` (None without GT)."""
    pred = read_mask(inputs.preds[index])
    if pred.shape != size:
        raise VcsegError(f"{inputs.preds[index]}: prediction is {pred.shape[1]}x{pred.shape[0]} but frame "
                         f"{inputs.frames[index]} is {size[1]}x{size[0]}; predict at the frame's own size")
    gt_path = inputs.gts[index] if inputs.gts is not None else None
    if gt_path is None:
        return pred, None, None
    gt = read_mask(gt_path, binary_to_id=False)  # 255 kept: the scorer decides what it means
    if gt.shape != size:
        raise VcsegError(f"{gt_path}: ground truth is {gt.shape[1]}x{gt.shape[0]} but frame "
                         f"{inputs.frames[index]} is {size[1]}x{size[0]}; give the --gt of this dataset")
    return pred, gt, _frame_counts(pred, gt)


def _frame_counts(pred: np.ndarray, gt: np.ndarray) -> FrameCounts:
    """`FrameCounts.of(pred, gt)`, counted inside the box holding every person of either map
    (persons cover a small part of a frame: 2-4x faster), the background outside added after."""
    box = bounding_box((pred | gt) != 0)
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


def _display_masks(read: list, shrink: int, with_gt: bool) -> tuple[dict[int, int] | None, list[_FrameMasks]]:
    """The GT -> prediction matching (None without GT) and every frame's masks at display size."""
    if not with_gt:
        return None, [_FrameMasks(pred=_sample(pred, shrink)) for pred, _, _ in read]
    scored = [i for i, (_, gt, _) in enumerate(read) if gt is not None]
    gts, voids, counts = _scored([read[i][0] for i in scored], [read[i][1] for i in scored],
                                 [read[i][2] for i in scored])
    masks = [_FrameMasks(pred=_sample(pred, shrink)) for pred, _, _ in read]
    for k, index in enumerate(scored):
        void = _sample(voids[k], shrink) if voids is not None and voids[k].any() else None
        masks[index] = _FrameMasks(pred=masks[index].pred, gt=_sample(gts[k], shrink), void=void)
    return _match(counts), masks


def _draw_frame(inputs: VideoInputs, masks: list[_FrameMasks], layout: _Layout, shrink: int,
                matched: np.ndarray, sheet_at: set[int], index: int):
    """One MP4 frame, ready to encode; its contact-sheet tile if the sheet shows it (else None);
    and which error classes it shows (`(4,)` 0/1). Runs in a worker thread."""
    frame = _read_frame_shrunk(inputs.frames[index], shrink, layout.frame_size, (layout.panel_h, layout.panel_w))
    frame_masks = masks[index]
    video_frame, canvas = _thread_canvas(layout)
    pred_panel, gt_panel = layout.panels(canvas)
    seen = np.zeros(4, dtype=np.int64)
    errors = box = None
    if frame_masks.gt is not None:
        pred, gt = frame_masks.pred, frame_masks.gt
        if frame_masks.void is not None:
            pred = cut_void([pred], [frame_masks.void])[0]
            gt = np.where(frame_masks.void, 0, gt).astype(np.uint8)
        box = bounding_box((pred | gt) != 0)  # errors lie where some person is
        if box is not None:
            errors = np.zeros(pred.shape, dtype=np.uint8)
            errors[box] = error_classes(pred[box], gt[box], matched)
            seen = (np.bincount(errors[box].ravel(), minlength=4) > 0).astype(np.int64)
    draw_ids(pred_panel, frame, frame_masks.pred, errors=errors, error_box=box)
    if gt_panel is not None:
        if frame_masks.gt is None:
            np.copyto(gt_panel, frame)
            paste(gt_panel, text_patch("no ground truth"), 0, 0)
        else:
            draw_ids(gt_panel, frame, frame_masks.gt, skip_labels=(VOID_ID,))
    tile = (_sheet_tile(canvas[:layout.panel_h, :layout.width], inputs.stems[index], sheet_shrink(layout.panel_w))
            if index in sheet_at else None)
    return to_yuv(video_frame), tile, seen


_per_thread = threading.local()


def _thread_canvas(layout: _Layout) -> tuple[av.VideoFrame, np.ndarray]:
    """This thread's RGB frame for `layout` and its pixels, legend drawn: reused frame after frame
    (the panels are redrawn whole each time)."""
    held = getattr(_per_thread, "canvas", None)
    if held is None or held[0] != layout:
        frame, pixels = rgb_frame(*layout.size)
        if layout.with_gt:
            pixels[layout.panel_h:layout.panel_h + LEGEND_HEIGHT, :layout.width] = _legend(layout.width, layout.panel_w)
        held = _per_thread.canvas = (layout, frame, pixels)
    return held[1], held[2]


def _read_frame_shrunk(path: Path, shrink: int, full: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The frame, checked to be `full` (H, W), at `size` (`full` / `shrink` rounded up), decoded at that
    scale where the decoder can (libjpeg's DCT scaling by 1/2, 1/4, 1/8)."""
    if shrink == 1:
        frame = read_frame(path)
        found = frame.shape[:2]
    else:
        try:
            with Image.open(path) as image:
                found = (image.height, image.width)
                image.draft("RGB", (size[1], size[0]))
                image.load()
                if image.mode != "RGB":
                    image = image.convert("RGB")
                if image.size != (size[1], size[0]):  # a decoder that could not scale while decoding
                    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                frame = np.asarray(image)
        except Exception as error:
            read_frame(path)  # raises VcsegError naming the file for anything it cannot decode
            raise VcsegError(f"{path}: cannot decode the frame at 1/{shrink} size ({error}); "
                             "pass --shrink 1") from None
    if found != full:
        raise VcsegError(f"{path}: frame is {found[1]}x{found[0]} but the video's masks are {full[1]}x{full[0]}; "
                         "give --frames the dataset the predictions were made from")
    return frame


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
    tile = np.array(Image.fromarray(panels).reduce(factor)) if factor > 1 else panels.copy()
    paste(tile, text_patch(stem), 0, 0)
    return tile


def _write_sheet(path: Path, tiles: list[np.ndarray], layout: _Layout) -> None:
    """The sampled frames in a grid, the legend under them (GT mode)."""
    tile_h, tile_w, columns, rows = sheet_layout(layout.panel_h, layout.panel_w, len(tiles), layout.with_gt)
    legend_h = LEGEND_HEIGHT if layout.with_gt else 0
    sheet = np.zeros((rows * tile_h + legend_h, columns * tile_w, 3), dtype=np.uint8)
    for k, tile in enumerate(tiles):
        row, column = divmod(k, columns)
        sheet[row * tile_h:(row + 1) * tile_h, column * tile_w:(column + 1) * tile_w] = tile
    if layout.with_gt:
        sheet[rows * tile_h:] = legend_strip(sheet.shape[1], tile_w // 2)
    info = PngInfo()
    info.add_text("Software", VIZ_TAG)
    buffer = io.BytesIO()
    Image.fromarray(sheet).save(buffer, format="PNG", pnginfo=info, compress_level=1)  # 4x faster than 6
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
