"""The one validation pass behind `vcseg pack` and `vcseg pack --check`.

`validate_source` checks a `MaskSource` (a folder of predictions or a finished zip) against the
test frames and returns every problem at once, plus the plan of what goes into the zip:

- layout: one folder per test video at the top level, `<video>/<frame stem>.png`, nothing else
  (a wrapper folder, extra files, extra videos, missing videos and missing frames are reported);
  in a predictions folder, hidden files are a warning and not packed, except `vcseg predict`'s
  own logs and state (`vcseg.io.predict_files`), skipped without a word; a test video folder
  without frames is a warning (it takes no masks, the zip has no folder for it);
- per PNG: a readable PNG, single channel (P or L; see `vcseg.pack.png`), the frame's size;
- per video: at most `MAX_IDS_PER_VIDEO` distinct nonzero ids over all its frames.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from vcseg.errors import Problem, ProblemReport, VcsegError
from vcseg.io.frames import MASK_SUFFIX, frame_sort_key, image_size
from vcseg.io.layouts import find_dataset
from vcseg.io.predict_files import is_predict_bookkeeping
from vcseg.pack.png import PngFindings, inspect_png
from vcseg.pack.sources import MaskSource

MAX_IDS_PER_VIDEO = 8  # the competition scores a video with more ids as 0

Progress = Callable[[int, int], None]  # progress(done, total)


@dataclass(frozen=True)
class PlannedMask:
    """One PNG of the submission: where it comes from and whether --fix re-encodes it."""

    video: str
    stem: str
    name: str  # the source's name for it (may sit under a wrapper folder)
    conversion: str | None  # vcseg.pack.png.BINARY / GRAY, or None: bytes copied as they are

    @property
    def arcname(self) -> str:
        """Its name in the submission zip."""
        return f"{self.video}/{self.stem}{MASK_SUFFIX}"


@dataclass
class Validation(ProblemReport):
    """Everything one validation pass found."""

    problems: list[Problem] = field(default_factory=list)
    masks: list[PlannedMask] = field(default_factory=list)  # by video, then frame order
    ids_per_video: dict[str, int] = field(default_factory=dict)  # distinct nonzero ids

    @property
    def ok(self) -> bool:
        return not self.errors


def find_test_videos(frames_root: str | os.PathLike[str]) -> tuple[dict[str, dict[str, Path]], dict[str, Path]]:
    """The test set's frames, {video: {stem: jpg path}}, for any layout `find_dataset` reads, and
    the video folders that hold no frame, {video: folder} (reported, never silently dropped)."""
    dataset = find_dataset(frames_root)
    videos = {video.name: video.frames for video in dataset.videos if video.frames}
    if not videos:
        raise VcsegError(f"{frames_root}: no test frames found; expected {frames_root}/<video>/*.jpg "
                         f"or {frames_root}/JPEGImages/<video>/*.jpg")
    empty = {video.name: dataset.frames_root / video.name for video in dataset.videos if not video.frames}
    return videos, empty


def _error(path: Path | None, message: str) -> Problem:
    return Problem("error", path, message)


def _is_hidden(parts: tuple[str, ...]) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in parts)


def find_wrapper(names: list[str], videos: set[str]) -> str | None:
    """The single folder that every video sits in (`NAME/<video>/...`), if the layout has one.

    Only reported when no test video is at the top level and the folder's subfolders are test
    videos, so an ordinary extra folder is not mistaken for a wrapper.
    """
    visible = [PurePosixPath(n).parts for n in names if not _is_hidden(PurePosixPath(n).parts)]
    tops = {parts[0] for parts in visible if len(parts) > 1}
    if len(tops) != 1 or tops & videos:
        return None
    top = next(iter(tops))
    inner = {parts[1] for parts in visible if len(parts) > 2 and parts[0] == top}
    return top if inner & videos else None


def validate_source(source: MaskSource, frames: dict[str, dict[str, Path]], *, fix: bool = False,
                    progress: Progress | None = None,
                    empty_videos: Mapping[str, Path] | None = None) -> Validation:
    """Check `source` against the test `frames` ({video: {stem: jpg}}); never raises for per-file
    problems, which are all collected in the result (errors first, then by file).

    empty_videos: the test set's video folders without frames ({video: folder}), each a warning.
    """
    result = Validation()
    empty_videos = empty_videos or {}
    for video, folder in sorted(empty_videos.items()):
        result.problems.append(Problem("warning", folder, "no frames; no masks expected, the zip has "
                                       "no folder for it"))
    names = source.names()
    for name, count in sorted(Counter(names).items()):
        if count > 1:
            result.problems.append(_error(source.location(name), f"appears {count} times in the zip; "
                                          "keep one entry per frame and pack again"))
    wrapper = find_wrapper(names, set(frames))
    if wrapper is not None:
        result.problems.append(_error(source.location(wrapper), "wrapper folder: the video folders are "
                                      f"inside '{wrapper}/', but they must be at the top level "
                                      "(`<video>/<frame>.png`); zip the video folders themselves, "
                                      "e.g. with vcseg pack"))
    inner = f"{wrapper}/" if wrapper is not None else ""
    found = _place_files(source, list(dict.fromkeys(names)), frames, inner, result.problems, empty_videos)
    _report_missing(source, frames, found, inner, result.problems)
    _check_masks(source, frames, found, inner, fix, progress, result)
    result.problems.sort(key=lambda p: (not p.is_error, str(p.path) if p.path is not None else ""))
    return result


def _place_files(source: MaskSource, names: list[str], frames: dict[str, dict[str, Path]], inner: str,
                 problems: list[Problem], empty_videos: Mapping[str, Path]) -> dict[str, dict[str, str]]:
    """Sort each file into its test frame, {video: {stem: source name}}; report everything else
    (hidden files, extra videos, extra files)."""
    found: dict[str, dict[str, str]] = {}
    extra_videos: Counter[str] = Counter()  # folder -> files in it
    hidden: Counter[str] = Counter()  # first hidden file or folder -> files under it
    for name in names:
        if not source.ships_every_file and is_predict_bookkeeping(name):
            continue  # predict's logs and state: never packed, and no stray file to warn about
        parts = PurePosixPath(name).parts
        prefix = inner if inner and parts[0] == inner[:-1] and len(parts) > 1 else ""
        if prefix:
            parts = parts[1:]
        if _is_hidden(parts):
            cut = next(i for i, part in enumerate(parts) if _is_hidden((part,)))
            hidden[prefix + "/".join(parts[:cut + 1])] += 1
        elif len(parts) >= 2 and parts[0] not in frames:
            extra_videos[prefix + parts[0]] += 1
        elif len(parts) != 2:
            problems.append(_error(source.location(name), "extra file: not at `<video>/<frame>.png`; "
                                   "the submission holds only one folder per test video with its PNGs; "
                                   "remove it"))
        else:
            video, file_name = parts
            stem, suffix = os.path.splitext(file_name)
            if suffix == MASK_SUFFIX and stem in frames[video]:
                found.setdefault(video, {})[stem] = name
                continue
            if suffix.lower() == MASK_SUFFIX and suffix != MASK_SUFFIX:
                why = f"the suffix must be '{MASK_SUFFIX}', not '{suffix}'"
            elif suffix != MASK_SUFFIX:
                why = "not a PNG mask"
            else:
                why = f"video '{video}' has no frame '{stem}'"
            problems.append(_error(source.location(name), f"extra file ({why}); the submission holds "
                                   "only `<video>/<frame stem>.png` for each test frame; remove or rename it"))

    for item, count in sorted(hidden.items()):
        if source.ships_every_file:
            problems.append(_error(source.location(item), f"extra hidden entry ({count} file(s)); the "
                                   "submission must hold nothing but the video folders; pack it again"))
        else:
            problems.append(Problem("warning", source.location(item),
                                    f"hidden ({count} file(s)); ignored, not packed"))
    for folder, count in sorted(extra_videos.items()):
        video = PurePosixPath(folder).name
        if video in empty_videos:  # its frames are missing here, so nothing about its masks can be checked
            problems.append(_error(source.location(folder), f"extra video: test video '{video}' has no "
                                   f"frames in {empty_videos[video]} ({count} file(s) here); restore its "
                                   "frames, or remove this folder"))
            continue
        problems.append(_error(source.location(folder), f"extra video: '{video}' is "
                               f"not a test video ({count} file(s)); remove it (the test set has "
                               f"{len(frames)} videos)"))
    return found


def _report_missing(source: MaskSource, frames: dict[str, dict[str, Path]],
                    found: dict[str, dict[str, str]], inner: str, problems: list[Problem]) -> None:
    """One problem per test video without a folder, and per frame without its PNG."""
    for video in sorted(frames):
        if video not in found:
            problems.append(_error(source.location(inner + video), f"missing video: no masks for test "
                                   f"video '{video}' ({len(frames[video])} frames); predict it and pack again"))
            continue
        for stem, frame in frames[video].items():
            if stem not in found[video]:
                problems.append(_error(source.location(f"{inner}{video}/{stem}{MASK_SUFFIX}"),
                                       f"missing frame: no PNG for frame {frame}; every test frame needs "
                                       "its mask (all 0 where nobody is seen)"))


def _check_masks(source: MaskSource, frames: dict[str, dict[str, Path]], found: dict[str, dict[str, str]],
                 inner: str, fix: bool, progress: Progress | None, result: Validation) -> None:
    """Read every placed PNG: format, channels, size, and the ids of each video; plan the zip."""
    total = sum(len(stems) for stems in found.values())
    done = 0
    for video in sorted(found):
        union: set[int] = set()
        first_over: str | None = None  # the frame where the video first exceeds the id limit
        for stem in sorted(found[video], key=frame_sort_key):
            name = found[video][stem]
            findings = _check_one(source, name, frames[video][stem], source.location(name), fix,
                                  result.problems)
            if findings is not None:
                union |= findings.ids
                if first_over is None and len(union) > MAX_IDS_PER_VIDEO:
                    first_over = stem
                if not findings.errors:
                    result.masks.append(PlannedMask(video, stem, name, findings.conversion))
            done += 1
            if progress is not None:
                progress(done, total)
        result.ids_per_video[video] = len(union)
        if first_over is not None:
            result.problems.append(_error(
                source.location(inner + video), f"{len(union)} distinct ids over the video "
                f"({', '.join(map(str, sorted(union)))}), first over {MAX_IDS_PER_VIDEO} at frame "
                f"{first_over}; at most {MAX_IDS_PER_VIDEO} per video, a video with more scores 0; keep "
                f"{MAX_IDS_PER_VIDEO} (e.g. the largest) and set the rest to 0"))


def _check_one(source: MaskSource, name: str, frame: Path, location: Path, fix: bool,
               problems: list[Problem]) -> PngFindings | None:
    """Inspect one PNG against its frame: appends its problems and returns its findings, with the
    size error added to `errors` (None where the file could not be read at all)."""
    try:
        data = source.read(name)
    except Exception as error:  # OSError, zipfile errors (bad CRC, unsupported compression)
        problems.append(_error(location, f"cannot read ({error}); write it again"))
        return None
    findings = inspect_png(data, fix=fix)
    problems.extend(_error(location, message) for message in findings.errors)
    if findings.height is None:
        return findings
    try:
        frame_hw = image_size(frame)
    except VcsegError:
        problems.append(_error(frame, f"cannot read this test frame's header, so the size of {location} "
                               "cannot be checked; restore the frame from the test set"))
        return replace(findings, errors=findings.errors + ("frame unreadable",))
    if frame_hw != (findings.height, findings.width):
        message = (f"size {findings.width}x{findings.height} (WxH), but frame {frame} is "
                   f"{frame_hw[1]}x{frame_hw[0]}; masks must have their frame's size (resize "
                   "predictions back to the frame with nearest-neighbour)")
        problems.append(_error(location, message))
        findings = replace(findings, errors=findings.errors + (message,))
    return findings
