"""Validate a dataset and index it: `vcseg ingest`.

Every frame is decoded and every mask read (in parallel, one video per task), and every problem
is collected with its file, so a user sees them all at once. The index records, per video, the
frames, the size, the ids present and, per id, the frames it appears in and its mean area; plus a
deterministic train/val split by video. `vcseg ingest` writes the index to the current folder
(`default_index_path`) unless told otherwise: nothing is ever written into the dataset.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcseg.errors import Problem, ProblemReport, VcsegError
from vcseg.io.frames import image_size, numbering_gaps, read_frame
from vcseg.io.layouts import DatasetFiles, VideoFiles, find_dataset
from vcseg.io.masks import RGB_MASKS_OPTION_HINT, MaskKind, RgbIdMap, read_mask_with_kind

INDEX_VERSION = 1


@dataclass
class IngestResult(ProblemReport):
    """What ingest found: the files, the index (JSON-ready) and every problem."""

    dataset: DatasetFiles
    index: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)


def default_index_path(root: str | os.PathLike[str]) -> Path:
    """`./<dataset folder name>.vcseg_index.json`: in the current folder, never in the dataset,
    which may be read-only or shared with others."""
    return Path(f"{Path(root).resolve().name or 'dataset'}.vcseg_index.json")


def _error(path: Path | None, message: str) -> Problem:
    return Problem("error", path, message)


def _warning(path: Path | None, message: str) -> Problem:
    return Problem("warning", path, message)


def index_video(video: VideoFiles, video_dir: Path, expect_masks: bool, sparse_masks: bool,
                rgb_masks: bool, decode_frames: bool = True) -> tuple[dict[str, Any], list[Problem]]:
    """Check one video's files and summarise it. Pure of global state, so it runs in a worker.

    video_dir: the video's frame folder, named in problems that concern the whole video.
    """
    problems: list[Problem] = []
    if not video.frames:
        problems.append(_error(video_dir, f"video {video.name!r} has no frames (.jpg); remove it or add its frames"))

    for first, second in numbering_gaps(video.stems):
        problems.append(_warning(video_dir, f"frame numbering jumps from {first} to {second} "
                                            "(frames missing in between)"))

    frame_sizes: dict[str, tuple[int, int]] = {}
    for stem, path in video.frames.items():
        try:
            frame_sizes[stem] = read_frame(path).shape[:2] if decode_frames else image_size(path)
        except VcsegError as error:
            problems.append(_error(path, str(error).removeprefix(f"{path}: ")))
    sizes = Counter(frame_sizes.values())
    video_size = sizes.most_common(1)[0][0] if sizes else None
    if len(sizes) > 1:
        for stem, size in frame_sizes.items():
            if size != video_size:
                problems.append(_error(video.frames[stem], f"frame is {size[1]}x{size[0]} but the video's "
                                                           f"other frames are {video_size[1]}x{video_size[0]}"))

    if expect_masks and not sparse_masks:
        for stem, path in video.frames.items():
            if stem not in video.masks:
                problems.append(_error(path, "frame has no mask (.png of the same stem); add it or remove the frame"))
    for stem, path in video.masks.items():
        if stem not in video.frames:
            problems.append(_error(path, "mask has no frame (.jpg of the same stem); remove it or add the frame"))

    rgb_map = RgbIdMap() if rgb_masks else None
    kinds: Counter[MaskKind] = Counter()
    id_frames: dict[int, list[str]] = {}
    id_area: Counter[int] = Counter()
    annotated = 0
    for stem, path in video.masks.items():
        try:
            ids, kind = read_mask_with_kind(path, rgb_map=rgb_map, rgb_hint=RGB_MASKS_OPTION_HINT)
        except VcsegError as error:
            problems.append(_error(path, str(error).removeprefix(f"{path}: ")))
            continue
        kinds[kind] += 1
        if stem in frame_sizes and ids.shape != frame_sizes[stem]:
            h, w = ids.shape
            fh, fw = frame_sizes[stem]
            problems.append(_error(path, f"mask is {w}x{h} but its frame is {fw}x{fh}; masks must match frames"))
            continue
        if stem not in video.frames:
            continue
        annotated += 1
        counts = np.bincount(ids.ravel(), minlength=1)
        for person_id in np.flatnonzero(counts[1:]) + 1:
            id_frames.setdefault(int(person_id), []).append(stem)
            id_area[int(person_id)] += int(counts[person_id])

    mask_dir = next(iter(video.masks.values())).parent if video.masks else None
    if kinds[MaskKind.BINARY]:
        problems.append(_warning(mask_dir, f"{kinds[MaskKind.BINARY]} binary 0/255 masks: 255 read as person 1"))
    if kinds[MaskKind.RGB]:
        problems.append(_warning(mask_dir, f"{kinds[MaskKind.RGB]} RGB masks mapped colour -> id "
                                           f"({len(rgb_map.ids) if rgb_map else 0} colours)"))
    if kinds[MaskKind.WIDE]:
        problems.append(_warning(mask_dir, f"{kinds[MaskKind.WIDE]} 16-bit masks read as 8-bit ids"))

    persons = {str(pid): {"frames": stems, "mean_area": round(id_area[pid] / len(stems), 3)}
               for pid, stems in sorted(id_frames.items())}
    entry = {
        "frames": video.stems,
        "height": video_size[0] if video_size else None,
        "width": video_size[1] if video_size else None,
        "annotated_frames": annotated,
        "ids": sorted(id_frames),
        "persons": persons,
    }
    return entry, collapse_repeats(problems)


def collapse_repeats(problems: list[Problem], keep: int = 3) -> list[Problem]:
    """Keep the first `keep` files of each identical message; fold the rest into one line.

    A video of 150 RGB masks gives three named files and "... and 147 more like this", not 150
    lines that hide the other problems.
    """
    by_message: dict[tuple[str, str], list[Problem]] = {}
    for problem in problems:
        by_message.setdefault((problem.severity, problem.message), []).append(problem)
    collapsed: list[Problem] = []
    for (severity, message), group in by_message.items():
        collapsed.extend(group[:keep])
        if len(group) > keep:
            folder = group[keep].path.parent if group[keep].path is not None else None
            collapsed.append(Problem(severity, folder, f"... and {len(group) - keep} more files: {message}"))
    return collapsed


def split_videos(names: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic split by video: the same names, fraction and seed give the same split."""
    if not 0.0 <= val_fraction < 1.0:
        raise VcsegError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    ordered = sorted(names)
    n_val = int(round(val_fraction * len(ordered)))
    if val_fraction > 0 and len(ordered) > 1:
        n_val = min(max(n_val, 1), len(ordered) - 1)
    order = np.random.default_rng(seed).permutation(len(ordered))
    val = sorted(ordered[i] for i in order[:n_val])
    return [n for n in ordered if n not in set(val)], val


def ingest(root: str | os.PathLike[str], *, layout: str | None = None,
           masks_root: str | os.PathLike[str] | None = None, resolution: str | None = None,
           rgb_masks: bool = False, val_fraction: float = 0.0, seed: int = 0,
           workers: int | None = None, decode_frames: bool = True,
           progress: Any = None) -> IngestResult:
    """Find, validate and index the dataset at `root`. Never raises for per-file problems: they
    are collected in `result.problems`; raises VcsegError only when no dataset can be found.

    progress: an optional callable `progress(done, total)` for a progress display.
    """
    dataset = find_dataset(root, layout=layout, masks_root=masks_root, resolution=resolution)
    problems: list[Problem] = []
    if not dataset.videos:
        problems.append(_error(dataset.frames_root, "no videos found; expected one folder of frames per video"))
    expect_masks = dataset.has_masks
    jobs = [(video, dataset.frames_root / video.name, expect_masks, dataset.sparse_masks, rgb_masks, decode_frames) for video in dataset.videos]
    workers = max(1, workers or os.cpu_count() or 1)
    entries: dict[str, dict[str, Any]] = {}
    if workers == 1 or len(jobs) <= 1:
        results = (index_video(*job) for job in jobs)
        pool = None
    else:
        pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)))
        results = pool.map(_index_video_job, jobs)
    try:
        for done, (video, (entry, video_problems)) in enumerate(zip(dataset.videos, results), start=1):
            entries[video.name] = entry
            problems.extend(video_problems)
            if progress is not None:
                progress(done, len(jobs))
    finally:
        if pool is not None:
            pool.shutdown()

    train, val = split_videos(list(entries), val_fraction, seed)
    for name in val:
        entries[name]["split"] = "val"
    for name in train:
        entries[name]["split"] = "train"
    index = {
        "version": INDEX_VERSION,
        "root": str(dataset.root.resolve()),
        "layout": dataset.layout,
        "frames_root": str(dataset.frames_root.resolve()),
        "masks_root": str(dataset.masks_root.resolve()) if dataset.masks_root and dataset.has_masks else None,
        "has_masks": dataset.has_masks,
        "split": {"val_fraction": val_fraction, "seed": seed, "train": train, "val": val},
        "videos": entries,
    }
    return IngestResult(dataset=dataset, index=index, problems=problems)


def _index_video_job(job: tuple) -> tuple[dict[str, Any], list[Problem]]:
    return index_video(*job)


def summarize(index: dict[str, Any]) -> dict[str, Any]:
    """Dataset-level figures for the summary table."""
    videos = index["videos"].values()
    persons = [len(v["ids"]) for v in videos]
    resolutions = Counter(f"{v['width']}x{v['height']}" for v in videos if v["height"])
    return {
        "videos": len(persons),
        "frames": sum(len(v["frames"]) for v in videos),
        "annotated_frames": sum(v["annotated_frames"] for v in videos),
        "persons_min": min(persons, default=0),
        "persons_mean": float(np.mean(persons)) if persons else 0.0,
        "persons_max": max(persons, default=0),
        "resolutions": dict(resolutions.most_common()),
        "train_videos": len(index["split"]["train"]),
        "val_videos": len(index["split"]["val"]),
    }


def render_ingest(result: IngestResult, console: Any, max_video_rows: int = 40) -> None:
    """Print the problems, a per-video table (for small datasets) and the summary table."""
    from rich.table import Table

    for problem in result.problems:
        style = "red" if problem.is_error else "yellow"
        console.print(f"[{style}]{problem}[/{style}]", markup=True, highlight=False, soft_wrap=True)
    index = result.index
    videos = index["videos"]
    if 0 < len(videos) <= max_video_rows:
        table = Table(title="Videos", show_lines=False)
        for column in ("video", "frames", "size", "persons", "annotated", "split"):
            table.add_column(column, justify="left" if column == "video" else "right")
        for name, entry in videos.items():
            size = f"{entry['width']}x{entry['height']}" if entry["height"] else "-"
            table.add_row(name, str(len(entry["frames"])), size, str(len(entry["ids"])),
                          str(entry["annotated_frames"]), entry["split"])
        console.print(table)
    figures = summarize(index)
    table = Table(title=f"Dataset ({index['layout']} layout{'' if index['has_masks'] else ', frames only'})")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("videos", str(figures["videos"]))
    table.add_row("frames", str(figures["frames"]))
    table.add_row("annotated frames", str(figures["annotated_frames"]))
    table.add_row("persons per video (min / mean / max)",
                  f"{figures['persons_min']} / {figures['persons_mean']:.2f} / {figures['persons_max']}")
    table.add_row("resolutions", ", ".join(f"{r} ({n})" for r, n in figures["resolutions"].items()) or "-")
    table.add_row("split train / val", f"{figures['train_videos']} / {figures['val_videos']}")
    table.add_row("errors / warnings", f"{len(result.errors)} / {len(result.warnings)}")
    console.print(table)
